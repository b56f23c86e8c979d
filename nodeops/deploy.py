"""The deploy engine: preflight (no host touched), observe, plan, execute, verify.

Per service:
  1. preflight: role, profile, secrets and every file rendered in memory; any
     problem here is exit 2 and no host has been contacted;
  2. observe: connect to the pair through the bastion (an unreachable node
     stops the run before anything changes), check the files directory is
     RAM-backed, pull the image (its id is what "up to date" compares),
     inspect the containers, probe /health;
  3. plan (nodeops.plan), printed and stopped there with --dry-run;
  4. execute: files created 0400 for the container user before their first
     byte (content on stdin, never in an argument), containers replaced
     standby first, a planned handover for the active, rollback to the
     previous container when a node does not come up;
  5. verify: the active serves (directly and through the load balancer), the
     standby waits, no secret file is left that the nodes no longer need,
     and no secret value sits in a container's environment.

Secret files and restarts (documented in docs/security.md): a node reads its
config, secrets and password files when its process starts, and `.api` only
once it holds the lease. Each file is shredded as soon as its node has read
it: start files once the container runs, lease files once it serves. A
standby therefore keeps `.api` (0400, RAM only) until it takes over. With
shredded files a container cannot start again by itself, so the inventory
refuses an automatic restart policy unless `secret_files: keep`.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn

from nodeops import program
from nodeops.commands import node as cmd
from nodeops.diff import BODY_INDENT, Side, service_diff, summary
from nodeops.edges import http
from nodeops.edges.postgres import LoginRefused
from nodeops.edges.ssh import CommandResult, Fleet, Link, execute
from nodeops.errors import EXIT_UNSAFE, Interrupted, InvalidInput, InventoryError, NodeopsError, OperationFailed, Unsafe
from nodeops.facts import files as file_facts
from nodeops.facts import image as image_facts
from nodeops.facts.container import Container, connected_to, served_port, socket_table
from nodeops.facts.health import app_id
from nodeops.facts.observe import Observer
from nodeops.facts.view import NodeView
from nodeops.inventory import Inventory, Node, Service
from nodeops.lease import LeaseView, recorded_version
from nodeops.notify import webhook_url
from nodeops.plan import (
    Desired,
    ServicePlan,
    lease_moves,
    older_than,
    plan_service,
    replaces_a_standby,
    restart_image,
    secret_changes,
    standby_evidence,
    unpulled_image_id,
)
from nodeops.records import Deployed, DryRun, NodeNow, Now
from nodeops.render import Rendered, render, with_texts
from nodeops.roles import Role, check_service, check_variables, profile_name, role_for
from nodeops.secrets import MASK, Secret, resolve, secret_forms
from nodeops.stopping import StopRequests

SERVE_TIMEOUT = 120.0  # a node's first boot migrates its database
WAIT_TIMEOUT = 60.0
LB_TIMEOUT = 15.0
STANDBY_STABLE = 2.0  # a standby must stay up, not serving, this long
UNHEALTHY_GRACE = 20.0  # a node that took the lease may answer 503 this long while its checks come up
POLL = 0.2
LOG_TAIL = 20  # lines of a container's log searched for its last telling line (last_log)
SHRED_TIMEOUT = 15.0  # a shred of a few small files in RAM takes milliseconds: longer, the node was cut off


def telling_line(text: str) -> str | None:
    """The last line of ``text`` that carries words (a letter or a digit), stripped; None when none does. A blank
    line, or a separator drawn with dashes, equals signs or box characters, says nothing about a failure."""
    lines = [line.strip() for line in text.splitlines() if any(ch.isalnum() for ch in line)]
    return lines[-1] if lines else None


class Redactor:
    """Masks every form a secret value can take in text shown to a person or a log.

    The forms and the length rule are ``nodeops.secrets.secret_forms``'s.
    """

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.forms = secret_forms(secrets)

    def with_secrets(self, more: Iterable[Secret]) -> Redactor:
        """A redactor that masks what this one masks and ``more``."""
        wider = Redactor(more)
        wider.forms = sorted({*self.forms, *wider.forms}, key=len, reverse=True)
        return wider

    def __call__(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, MASK)
        return text

    def clip(self, text: str, limit: int = 300, tail: bool = False) -> str:
        """``text`` as one line of at most ``limit`` characters (its end with ``tail``), masked *before* it is
        cut: a secret cut in two, or spread over lines, would escape the mask."""
        line = " ".join(self(text).split())
        return line[-limit:] if tail else line[:limit]

    def leaks(self, text: str) -> bool:
        return any(form in text for form in self.forms)


class Reporter:
    """Progress a person can follow, or one JSON object per event when asked (CI)."""

    def __init__(self, json_lines: bool, write: Callable[[str], None] = print,
                 show: Callable[[dict], None] | None = None) -> None:  # fmt: skip
        """``json_lines``: each event as one JSON object (docs/events.schema.json) through ``write``; otherwise
        each event goes to ``show`` (a terminal's view: nodeops.console.Screen), else a plain line to ``write``."""
        self.json = json_lines
        self.write = write
        self.show = show
        self.started = time.monotonic()
        self.lock = threading.RLock()  # re-entered when a signal handler reports while the main thread writes
        self.sinks: list[Callable[[dict], None]] = []  # also given every event (the audit log)

    @classmethod
    def silent(cls) -> Reporter:
        """For a ServiceDeploy used only to look (status, verify, check): its progress is nobody's business."""
        return cls(True, lambda _line: None)

    def __call__(self, service: str, node: str, message: str, **data) -> None:
        elapsed = time.monotonic() - self.started
        event = {"event": "step", "t": round(elapsed, 2), "service": service, "node": node, "message": message, **data}
        with self.lock:
            if self.json:
                self.write(json.dumps(event))
            elif self.show is not None:
                self.show(event)
            else:
                self.write(f"{elapsed:7.1f}s  {service:<12} {node or '-':<12} {message}")
            for sink in self.sinks:
                sink(event)


class OutageProbe:
    """Starts a check every 100 ms while a handover runs, each in a thread of its own, so that a check waiting out
    its timeout (0.5 s through a load balancer) delays neither the next sample nor the one that ends the gap; at
    most ``parallel`` run at once (a tick with none free is skipped). A sample is (when it began, time.monotonic();
    whether the check passed). The outage is the longest run of failed samples, from the last good one before it
    (or, when none came before, its first failed sample) to the first good one after. Entering waits for the first
    sample, so that the measure starts before whatever the block does (stopping the active); leaving waits for the
    samples in flight."""

    def __init__(self, check: Callable[[], bool], interval: float = 0.1, limit: float = 600, parallel: int = 6) -> None:
        self.check, self.interval, self.limit = check, interval, limit
        self.samples: list[tuple[float, bool]] = []  # ordered by when each began
        self.stop = threading.Event()
        self.free = threading.BoundedSemaphore(parallel)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        t = time.monotonic()
        try:
            ok = self.check()
        except Exception:  # noqa: BLE001 (a probe that dies would measure nothing: any failure is a bad sample)
            ok = False
        finally:
            self.free.release()
        with self.lock:
            bisect.insort(self.samples, (t, ok))

    def _loop(self) -> None:
        deadline = time.monotonic() + self.limit  # bounded, whatever happens to the caller
        started: list[threading.Thread] = []
        while not self.stop.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            if self.free.acquire(blocking=False):
                started = [s for s in started if s.is_alive()]
                started.append(threading.Thread(target=self._sample, daemon=True))
                started[-1].start()
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t)))
        for sample in started:  # the samples in flight belong to the measure (each bounded by the check's timeout)
            sample.join(timeout=5)

    def __enter__(self) -> OutageProbe:
        self.thread.start()
        deadline = time.monotonic() + 5  # one sample takes at most the check's own timeout
        while not self.samples and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def answered_since(self, t: float, limit: float = 5.0) -> bool:
        """Wait up to ``limit`` seconds for a good sample begun at or after ``t`` (time.monotonic()): the one that
        ends the gap. A fixed pause is not enough: a sample begun during the gap may still be waiting for its own
        timeout (0.5 s for the load balancer) when the service answers again, and a probe stopped before the sample
        after it would leave the gap unclosed, so not counted (issue 13: "outage 0.00s" where a 50 ms sampler saw
        0.4 s). False when none came: the service stopped answering again, or the probe ended."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.thread.is_alive():
            with self.lock:
                if any(ok for _, ok in self.samples[bisect.bisect_left(self.samples, (t,)) :]):
                    return True
            time.sleep(self.interval / 4)
        return False

    @property
    def outage(self) -> float:
        """Seconds from the last good sample (else the first failed one) to the first good sample after, across
        the longest run of failures; 0 if none failed (failures never followed by a good sample: not counted)."""
        worst, since, failing = 0.0, None, False
        for t, ok in self.samples:
            if ok:
                if failing:
                    worst = max(worst, t - since)
                since, failing = t, False
            else:
                since, failing = t if since is None else since, True
        return worst

    def measured(self, was_serving: bool) -> float | None:
        """The outage, when there is one to measure: the service answered at the first sample (taken before the
        block stopped anything), or the active answered 200 then (a failed first sample is then counted as the
        gap's start, as ``outage`` does). None when neither: the service was not answering before (an active
        answering 503), so no gap began with the handover and 0 would claim an outage that was not measured."""
        answered = bool(self.samples) and self.samples[0][1]
        return self.outage if answered or was_serving else None

    @property
    def answering_after(self) -> float | None:
        """Seconds from the first sample to the first good one; None when none was good."""
        good = [t for t, ok in self.samples if ok]
        return good[0] - self.samples[0][0] if good else None


@dataclass(frozen=True)
class Job:
    """One service, everything known before any host is touched."""

    service: Service
    role: Role
    profile: str
    rendered: Rendered
    redact: Redactor
    secrets: Mapping[str, Secret]  # resolved, in memory only; for the lease reader

    @property
    def variables(self) -> Mapping[str, object]:
        """The role's defaults overlaid with the service's variables, as the templates see them."""
        return {**self.role.defaults, **self.service.variables}

    def side(self, digest: str | None) -> Side:
        """What this job would start, as a diff's new side: the service's image with ``digest`` (the registry's, None
        when not known), the variables its templates read (Role.read_variables: no default a variable the service
        sets makes unused), the rendered files and the version of each secret they use."""
        return Side(self.service.image, digest, self.role.read_variables(self.service.variables), self.rendered.files,
                    dict(self.rendered.secret_versions))  # fmt: skip

    def files_read(self, when: str) -> tuple[str, ...]:
        """The node's files it reads at process start ("start") or once it holds the lease ("lease")."""
        profile = self.role.profile(self.profile)
        return tuple(name for name in self.rendered.files if profile.files[name].read == when)

    @property
    def all_files(self) -> tuple[str, ...]:
        return tuple(self.rendered.files)


INPUT_LABELS = ("variables", "secrets")  # with image (none before it existed), profile, config: what it ran on
TEXTS_LABEL = "files"  # the text of its non-secret files; absent on a container started by an older nodeops


def recorded_texts(job: Job) -> dict[str, str]:
    """{file name: text} of ``job``'s non-secret files (``config.toml``), what a container's ``files`` label and an
    audit record keep so that a diff's old side and a rollback are the text a node really read, not today's
    templates' rendering of its inputs. Never a secret file, not even its hash (a hash of secrets.toml would let
    anyone who reads labels test a guessed password offline: render.Rendered), and never a file whose text holds
    a form of one of the run's secrets (``job.redact``: a plain variable that equals a secret's value, say): such
    a file is left out, and compared as today's templates render it."""
    return {name: f.data.decode("utf-8") for name, f in job.rendered.files.items()
            if not f.secret and not job.redact.leaks(f.data.decode("utf-8", "replace"))}  # fmt: skip


def compact(value: object) -> str:
    """``value`` as one line of JSON, keys sorted: a label's or an audit field's text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def input_labels(job: Job) -> dict[str, str]:
    """The labels that let a container be started again on exactly its inputs (``restore_job``): the image
    reference as the inventory gives it (tag and digest: the engine's own record may drop the tag,
    plan.Container.reference), the service's own variables, the version id of every secret its files use and
    the text of its non-secret files (recorded_texts). Non-secret only: ``docker inspect`` shows labels to anyone
    on the host."""
    return {"image": job.service.image, "variables": compact(dict(job.service.variables)),
            "secrets": compact(dict(job.rendered.secret_versions)),
            TEXTS_LABEL: compact(recorded_texts(job))}  # fmt: skip


def as_recorded(job: Job, texts: Mapping[str, str] | None, config: str | None,
                secret_versions: Mapping[str, str | None] | None = None) -> Job | None:  # fmt: skip
    """``job`` with its non-secret files holding ``texts`` (recorded_texts of when a node started), when that is
    exactly what ran: its config hash, computed again (over ``secret_versions`` when given: those of then), equals
    the recorded ``config``. None when it does not (no texts: an older nodeops; a file left out; another command or
    file list today): the caller then has only today's templates' rendering of the inputs of then."""
    if texts is None:
        return None
    then = with_texts(job.rendered, job.role, job.service, texts, secret_versions)
    if then.config_hash != config:
        return None
    return dataclasses.replace(job, rendered=with_texts(job.rendered, job.role, job.service, texts))


def changed_inputs(then: Job, now: Job) -> list[str]:
    """What ``now`` changes in the inputs ``then`` ran on, by name only (never a value), for a fix forward:
    ``["variable ROOT_DIR", "secret keystore"]``: each variable whose value differs (role defaults included), then
    each secret whose version differs; the image is left out (it is what cannot go back)."""
    old, new = then.variables, now.variables
    variables = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    old_v, new_v = then.rendered.secret_versions, now.rendered.secret_versions
    secrets = sorted(k for k in {*old_v, *new_v} if old_v.get(k) != new_v.get(k))
    return [f"variable {k}" for k in variables] + [f"secret {k}" for k in secrets]


def restore_job(inventory: Inventory, current: Job, node: str, container: Container) -> Job:
    """The inputs ``container`` (on ``node``) was started from, rendered again in memory: its image reference,
    the variables and secret versions its labels record (each secret read at that version, only where it
    differs from ``current``'s), today's role. Used to start that container again after a failed change, so that
    it runs on what it ran on, never on the change's inputs.

    Raises Unsafe (exit 4) when that cannot be done: no record in the labels (a container started by hand or by
    an older nodeops), or a secret version the backend no longer has. Today's role renders them, and the text of
    its non-secret files is the one its ``files`` label records when that is exactly what it ran (as_recorded);
    otherwise (an older nodeops recorded no text) and when the role's templates or defaults changed since, the
    result's config hash differs from the container's ``config`` label (the caller says so)."""
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
    try:
        # the secrets its files used, and no other: a reference added since (an RPC URL, say) changes the render
        secrets = {name: current.secrets[name] for name in versions if name not in moved}
        if moved:
            secrets.update(resolve(inventory, then, skip=[n for n in then.secrets if n not in moved], versions=moved))
        job = job_for(inventory, then, secrets=secrets)
    except InvalidInput as exc:
        raise Unsafe(f"{where}: {exc}; nothing was changed (`--allow-inexact-restore` goes on regardless)") from None
    texts = container.label(TEXTS_LABEL)
    job = as_recorded(job, json.loads(texts) if texts else None, container.label("config")) or job
    return dataclasses.replace(job, redact=current.redact.with_secrets(secrets.values()))


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
    rendered = render(role, profile, service, secrets, file=str(inventory.source))
    return Job(service, role, profile, rendered, Redactor([*secrets.values(), *masked]), secrets)


class ChangeFailed(OperationFailed):
    """A failed change whose message already says what serves now (ServiceDeploy.confirm)."""


class ChangeRefused(ChangeFailed):
    """A change stopped as unsafe (exit 4), its message saying what serves now: a node left stopped because no image
    the run holds can run on the database its new container migrated (ServiceDeploy.previous_on; the message names
    the fix forward), or a node the plan took for the standby found holding the lease (ServiceDeploy.steps)."""

    exit_code = EXIT_UNSAFE


class ServiceDeploy:
    def __init__(self, job: Job, fleet: Fleet, report: Reporter) -> None:
        self.job = job
        self.service = job.service
        self.fleet = fleet
        self.report = report
        self.runtime = job.service.runtime
        self.name = cmd.container_name(job.service.name)
        self.observer = Observer(fleet, job.service, job.role)  # its connections, ports and replies are the run's
        self.conns: dict[str, Link] = self.observer.conns
        self.digest: str | None = None  # of the image as pulled, recorded on the containers
        self.answers: dict[str, bytes] = self.observer.answers  # node -> body of its latest health reply (200 or not)
        self.outages: list[float | None] = []  # of each planned handover execute() ran, as probed (seconds; None:
        # not measured, the service was not answering before it: OutageProbe.measured)
        self.stop = StopRequests(lambda _line: None)  # replaced by the run's (Operation.stop): see execute()
        self.inexact_ok = False  # --allow-inexact-restore: a container whose inputs are unknown restarts on today's
        self.ran_on: dict[str, Job] = {}  # node -> the inputs its container was started from (restore_job)
        self.was_running: dict[str, bool] = {}  # node -> whether that container ran when the change began
        self.moved: set[str] = set()  # nodes whose container was renamed to the previous one by this run
        self.ports: dict[str, int] = self.observer.ports  # node -> the port its container serves, as last inspected
        self.pulled = False  # observe() pulled the image on every node: a restart may use it (previous_on)
        self.recorded: str | None = None  # the version the database recorded when the change began (run())
        self.forward: list[str] = []  # why a failed change cannot be undone, only fixed forward (previous_on)
        self.stuck = False  # a node was left stopped: no image this run knows runs on the database (exit 4)
        self.stop_seen: int | None = None  # the step a stop was first seen before, where it could not stop (execute)

    # -- plumbing ----------------------------------------------------------------
    def say(self, node: str, message: str, **data) -> None:
        self.report(self.service.name, node, message, **data)

    def x(self, node: str, command: str, stdin: bytes | None = None, check: bool = True,
          timeout: float | None = None) -> CommandResult:  # fmt: skip
        """Run a shell line on ``node``, within ``timeout`` seconds (the inventory's ``ssh.command_timeout`` by
        default); a failure names service, node, command and (redacted) reason."""
        res = execute(self.conns[node], command, stdin=stdin, timeout=timeout or self.fleet.settings.command_timeout)
        if check and res.exit_code:
            raise OperationFailed(f"{self.service.name} {node}: `{' '.join(command.split()[:2])}` failed: "
                                  f"{self.why(res)}")  # fmt: skip
        return res

    def why(self, res: CommandResult) -> str:
        """A failed command's reason: its last line of output (redacted, clipped), else its exit status."""
        output = (res.stderr.strip() or res.stdout.strip()).splitlines()
        return self.job.redact.clip(output[-1]) if output else f"exit {res.exit_code}"

    def inspect(self, node: str, name: str | None = None) -> Container | None:
        """The container ``name`` (the service's, by default) on ``node`` (Observer.container)."""
        return self.observer.container(node, name)

    def serving(self, node: Node) -> bool:
        """Does ``node`` answer its health path with 200?"""
        return self.health(node)[0]

    def health(self, node: Node) -> tuple[bool, tuple[str, ...]]:
        """``node``'s reply to its health path: (200, the checks it says fail) (Observer.health)."""
        return self.observer.health(node)

    def connect_all(self) -> None:
        """Every node of the service, or the run stops here, before anything changed."""
        for node in self.service.nodes:
            self.observer.connect(node)

    # -- observe -----------------------------------------------------------------
    def observe(self, dry_run: bool = False) -> tuple[dict[str, NodeView], Desired]:
        """Each node's state and what the run wants. A deploy pulls the image on every node (its id is what "up to
        date" compares); a dry run pulls nothing and changes nothing on a node (see look_image)."""
        image = self.service.image
        ids = set()
        self.connect_all()
        for node in self.service.nodes:
            self.require_tmpfs(node.name, dry_run)
            if not dry_run:
                ids.add(self.pull(node.name, image))
        if dry_run:
            return self.states(), Desired(image, self.look_image(), self.job.rendered.config_hash)
        if len(ids) != 1:
            raise OperationFailed(f"{self.service.name}: {image} resolves to different images on the nodes: {ids}")
        image_id, self.digest = ids.pop()
        self.pulled = True
        return self.states(), Desired(image, image_id, self.job.rendered.config_hash)

    def require_tmpfs(self, node: str, dry_run: bool) -> None:
        """Unsafe (exit 4) unless the files directory is RAM-backed; a deploy creates it, a dry run looks at it
        (or at /run, where it would be created)."""
        fs, run_fs = (cmd.sh(file_facts.filesystem_type(path)) for path in (cmd.FILES_ROOT, "/run"))
        probe = (f"if [ -d {cmd.FILES_ROOT} ]; then {fs}; else {run_fs}; fi" if dry_run
                 else f"mkdir -p -m 0755 {cmd.FILES_ROOT} && {fs}")  # fmt: skip
        found = self.x(node, probe).stdout.strip()
        if found != "tmpfs":
            raise Unsafe(f"{self.service.name} {node}: {cmd.FILES_ROOT} is on {found}, not RAM "
                         "(tmpfs): secret files would reach the disk; mount a tmpfs on /run")  # fmt: skip

    def look_image(self) -> str:
        """A dry run's view of the image, pulling nothing: the registry's digest, read with `docker manifest
        inspect` on the first node (sets ``digest``; None, said as "resolved at deploy", when the registry or the
        CLI cannot tell: a podman runtime, a multi-platform list, the registry unreachable), and the image each
        node already holds; returns the id a deploy would compare (plan.unpulled_image_id)."""
        image, first = self.service.image, self.service.nodes[0].name
        config = self.x(first, cmd.sh(image_facts.registry_config(self.runtime)), check=False).stdout
        argv = image_facts.manifest_inspect(self.runtime, image, image_facts.insecure_registry(image, config))
        found = self.x(first, cmd.sh(argv), check=False) if argv else None
        self.digest = image_facts.parse_manifest_digest(found.stdout) if found and found.exit_code == 0 else None
        if found is not None and found.exit_code and image_facts.says_no_such_image(found.stderr + found.stdout):
            self.no_such_image(found)
        if self.digest is None:
            why = "not with podman" if argv is None else self.why(found) if found.exit_code else "a multi-platform list"
            self.say(first, f"registry digest of {image} not read ({why}): resolved at deploy", digest=None)
        held = []
        for node in self.service.nodes:
            res = self.x(node.name, cmd.sh(image_facts.image_id(self.runtime, image)), check=False)
            held.append(image_facts.parse_image_id(res.stdout, image) if res.exit_code == 0 else None)
        return unpulled_image_id(image, held, self.digest)

    def pull(self, node: str, image: str) -> tuple[str, str | None]:
        """Pull ``image`` on ``node``: (image id, registry digest). Pulling is how a tag moved in the registry is
        noticed; when the pull fails (the registry is down) and the node already holds the image, that one is used
        and the step line says so (pinned by digest, it is exactly the image asked for; a tag is the one pulled
        last). An image the node does not hold fails the run with the pull's error."""
        pulled = self.x(node, cmd.sh(cmd.pull(self.runtime, image)), check=False)
        held = self.x(node, cmd.sh(image_facts.image_id(self.runtime, image)), check=pulled.exit_code == 0)
        if pulled.exit_code and image_facts.says_no_such_image(pulled.stderr + pulled.stdout):
            self.no_such_image(pulled)
        if held.exit_code:
            raise OperationFailed(f"{self.service.name} {node}: `{self.runtime} pull` failed: {self.why(pulled)}")
        image_id, digest = image_facts.parse_image_id(held.stdout, image)
        if pulled.exit_code == 0:
            self.say(node, f"pulled {image} ({digest or 'no registry digest'})", digest=digest)
        else:
            which = ("pinned by digest: the very image" if "@" in image else
                     "the tag as last pulled here: a move of the tag in the registry is not seen")  # fmt: skip
            self.say(node, f"could not pull {image} ({self.why(pulled)}); using the image this node holds, "
                     f"{image_id[:19]} ({which})", digest=digest, pull_failed=True)  # fmt: skip
        return image_id, digest

    def no_such_image(self, answer: CommandResult) -> NoReturn:
        """The registry says the image does not exist: invalid input (exit 2) naming services.X.image, raised
        before any container is touched (a dry run's look, a deploy's pull)."""
        raise InventoryError(str(self.fleet.inventory.source), f"services.{self.service.name}.image",
                             f"the registry has no {self.service.image} ({self.why(answer)}); give a tag or digest "
                             "that was pushed (e.g. `docker manifest inspect IMAGE` where the nodes pull)")  # fmt: skip

    def states(self) -> dict[str, NodeView]:
        """Each node's container and whether it serves (once observe() has connected)."""
        return {n.name: NodeView(n, self.inspect(n.name), *self.health(n)) for n in self.service.nodes}

    # -- steps -------------------------------------------------------------------
    def run_spec(self, job: Job | None = None) -> cmd.RunSpec:
        """`docker run` of ``job`` (this run's by default; its image is this run's image, as pulled)."""
        job = job or self.job
        role, r, service = job.role, job.rendered, job.service
        labels = {"service": service.name, "role": role.name, "profile": job.profile,
                  "version": cmd.image_tag(service.image), "config": r.config_hash,
                  "digest": self.digest or "none", "port": str(role.port), **input_labels(job)}  # fmt: skip
        return cmd.RunSpec(
            runtime=self.runtime, service=service.name, image=service.image, command=r.command,
            user=role.user, port=role.port, mount=role.mount, labels=labels, restart=service.restart,
            log_driver=service.log_driver, log_options=service.log_options,
            stop_timeout=int(role.stop_timeout), env_file=r.env_file,
        )  # fmt: skip

    def upload(self, node: str, job: Job | None = None) -> None:
        """The node's files (``job``'s, this run's by default), each created 0400 for the container user
        before its first byte."""
        job = job or self.job
        uid = job.role.user
        self.x(node, cmd.prepare_dir(self.service.name, uid))
        for f in job.rendered.files.values():
            self.x(node, cmd.write_file(self.service.name, f.name, uid), stdin=f.data)

    def new_change(self) -> None:
        """Forget what keep_restorable() learnt: the next execute() is another change (a rotation rolls twice)."""
        self.ran_on.clear()
        self.was_running.clear()
        self.moved.clear()

    def keep_restorable(self, nodes: Iterable[str]) -> None:
        """Before a change touches ``nodes``: the inputs each one's container was started from, rendered again
        (restore_job), so that a failure starts it again on exactly those. Refused (Unsafe) before anything
        changed when that is impossible, unless ``inexact_ok``."""
        for node in nodes:
            if node in self.ran_on:
                continue
            c = self.inspect(node)
            if c is None:
                continue
            self.was_running[node] = c.running
            try:
                job = self.ran_on[node] = restore_job(self.fleet.inventory, self.job, node, c)
                # every message of the run masks the old values too: a restored node's log may show them
                self.job = dataclasses.replace(self.job, redact=job.redact)
            except Unsafe as exc:
                if not self.inexact_ok:
                    raise
                self.say(node, f"warning: {exc}; going on (--allow-inexact-restore)")
                self.ran_on[node] = self.job
                continue
            if job.rendered.config_hash != c.label("config"):
                self.say(node, f"note: the role's templates or defaults changed since {c.name} started (its inputs "
                         f"render to config {job.rendered.config_hash[:12]}, not {str(c.label('config'))[:12]}): "
                         "a failure restarts it on today's templates with its own image, variables and secret "
                         "versions", inexact_restore=True)  # fmt: skip

    def shred(self, node: str, names: Sequence[str]) -> None:
        """Shred ``names`` under the service's folder on ``node`` (when the inventory has secret files shredded),
        within SHRED_TIMEOUT: a node cut off just after it took over must not hold the run (the old active waits
        to be started again) for the whole command timeout. OperationFailed when it did not finish."""
        if names and self.service.secret_files == "shred":
            self.x(node, cmd.shred(self.service.name, names), timeout=SHRED_TIMEOUT)
            self.say(node, f"shredded {', '.join(names)}")

    def replace(self, node: str) -> None:
        """The node's container replaced by one on this run's inputs; the old one is kept, stopped, as the previous
        container (renamed first: until then a failure has changed nothing on the node)."""
        previous = cmd.previous_name(self.service.name)
        old = self.inspect(node)
        if old:
            self.x(node, cmd.sh(cmd.remove(self.runtime, previous)) + " >/dev/null 2>&1; " +
                   cmd.sh(cmd.rename(self.runtime, self.name, previous)))  # fmt: skip
            self.moved.add(node)
            if old.running:
                self.x(node, cmd.sh(cmd.stop(self.runtime, previous, int(self.job.role.stop_timeout))))
        self.start_new(node)
        self.say(node, f"started {self.name} ({self.service.image}, config {self.job.rendered.config_hash[:12]})")

    def start_new(self, node: str, job: Job | None = None) -> None:
        """A new container on ``node`` for ``job`` (this run's by default): its files, then `docker run` (the
        service's container name must be free)."""
        job = job or self.job
        self.upload(node, job)
        self.x(node, cmd.sh(cmd.run(self.run_spec(job))))
        self.ports[node] = job.role.port
        if job.rendered.env_file:  # the docker CLI has read it; the container never sees the file
            self.shred(node, [job.rendered.env_file])

    def rollback(self, node: str, why: str) -> str:
        """Put the previous container back on ``node``, if there was one, on the inputs it was started from,
        and running only if it ran before; returns what was done and what the node does now, as seen (the caller
        confirms what serves). When the database has moved past the previous image, its inputs go back on this
        run's image instead (a new container), or the previous container stays stopped (previous_on)."""
        previous = cmd.previous_name(self.service.name)
        if node in self.was_running and node not in self.moved:
            return f"{why}; {node}'s container was not touched"
        self.x(node, cmd.sh(cmd.remove(self.runtime, self.name)), check=False)
        if not (back := self.inspect(node, previous)):
            self.ports.pop(node, None)
            self.shred(node, self.job.all_files)
            return f"{why}; {node} had no previous container to put back"
        again = self.previous_on(node, back) if self.was_running.get(node) else None
        if again is not None and again is not self.ran_on[node]:  # the database moved past its image
            self.x(node, cmd.sh(cmd.remove(self.runtime, previous)))
            self.start_new(node, again)
            tag = cmd.image_tag(again.service.image)
            self.say(node, f"started {self.name} on its previous inputs on {tag} (config "
                     f"{again.rendered.config_hash[:12]})")  # fmt: skip
            return f"{why}; {node}'s previous inputs were started again on {tag}, and it {self.settle(node, again)}"
        self.x(node, cmd.sh(cmd.rename(self.runtime, previous, self.name)))
        self.ports[node] = served_port(back, self.job.role.port)
        if again is None:
            self.shred(node, self.job.all_files)
            if not self.was_running.get(node):
                return f"{why}; {node}'s previous container is back, stopped as it was"
            return (f"{why}; {node}'s previous container is back, stopped: {back.version or 'its image'} "
                    "cannot run on the database")  # fmt: skip
        self.upload(node, again)  # its files were shredded once read: its own inputs again, never this run's
        self.x(node, cmd.sh(cmd.start(self.runtime, self.name)))
        self.say(node, f"started the previous container again (config {again.rendered.config_hash[:12]})")
        state = self.settle(node, again)
        return f"{why}; {node}'s previous container was started again on its own inputs, and it {state}"

    def previous_on(self, node: str, container: Container | None) -> Job | None:
        """The inputs ``node``'s previous ``container`` goes back on after a failed change, judged by the version the
        database records *now* (plan.restart_image): ``ran_on[node]`` itself (the previous container, as it was);
        the same inputs rendered on this run's image, for a new container, when the database was migrated past the
        previous image; None when no image this run holds can run on it. The last two add the way out to
        ``forward``; None also sets ``stuck`` (the run ends with exit 4).

        Why the change's image rather than a refusal: the new node took the lease and migrated the database before
        it failed (Chainlink writes ``node_versions`` first), and the previous image refuses to start on a newer
        database (CheckVersion), only once it took the lease itself: restarting it is a crash loop that leaves
        nothing serving. Undoing the migration needs a database restore (what was written since is lost), which a
        deploy must not do on its own. The previous inputs on the image that migrated the database are the nearest
        thing to what ran that can run at all: only the image differs, it already ran on this database, this run
        pulled it on both nodes, and the start is checked like any other (what serves is confirmed after). The pair
        serves again and the way out is a fix forward of the inputs the change changed, which the message names.
        Only when that cannot be done (the previous inputs unknown, no image pulled, a database newer than both
        images) is the node left stopped, said, exit 4."""
        job = self.ran_on[node]
        now = self.database_now()
        old = cmd.image_tag(container.reference if container and container.reference else job.service.image)
        new = cmd.image_tag(self.service.image)
        choice = restart_image(old, new, self.recorded, now)
        if choice == "previous":
            return job
        again, why_not = None, f"neither can {new}, this run's image"
        if choice == "change":
            why_not = ("this run pulled no image to start it on" if not self.pulled else
                       "its inputs are unknown (--allow-inexact-restore)" if job is self.job else "")  # fmt: skip
            try:
                if not why_not:
                    again = dataclasses.replace(job_for(self.fleet.inventory, dataclasses.replace(
                        job.service, image=self.service.image), secrets=job.secrets), redact=job.redact)  # fmt: skip
            except NodeopsError as exc:  # the role refuses those inputs on that image
                why_not = f"its inputs do not render on {new}: {exc}"
        by = f" by {self.service.image}" if now != self.recorded else ""
        changed = changed_inputs(job, self.job) if job is not self.job else ["what the change changed"]
        fix = (f"correct {', '.join(changed)} in the inventory, then deploy" if changed else
               f"deploy an image of {now} or newer that starts (only the image changed)")  # fmt: skip
        if again is None:
            self.stuck = True
            note = (f"the database was migrated to {now}{by}: {old}, the previous image, cannot run on it and "
                    f"{why_not}, so it was not started again; the way out is forward: {fix}")  # fmt: skip
        else:
            note = (f"the database was migrated to {now}{by} and {old} refuses to run on it, so the previous inputs "
                    f"went back on {new} (back to {old} only with the database restored from before); fix forward: "
                    f"{fix}")  # fmt: skip
        if note not in self.forward:
            self.forward.append(note)
        return again

    def database_now(self) -> str | None:
        """The version the database records now (lease.recorded_version), after a failed step; None, said, when it
        cannot be read (the previous image then restarts as it was, under its own check)."""
        try:
            return recorded_version(self.fleet, self.job)
        except NodeopsError as exc:
            self.say("", f"note: {exc}; the database's version is unknown: the previous image is started as it was")
            return None

    def settle(self, name: str, job: Job) -> str:
        """After a start on ``job``'s files: shred what the node has read once it waits (stably: its log
        may still hold the last run's lines) or serves, and everything if it does neither. No
        file outlives a run, failed or not. Returns what the node does, as seen: "waits for the lease",
        "holds the lease" or "is down (...)"."""
        node = next(n for n in self.service.nodes if n.name == name)
        try:
            self.await_waiting(node, job)
        except OperationFailed as exc:
            self.shred(name, job.all_files)  # it serves (all read), or it is down
            return "holds the lease" if any(self.health(node)) else f"is down ({exc})"
        self.shred(name, job.files_read("start"))
        return "waits for the lease"

    def confirm(self, what: str, unsafe: bool = False) -> ChangeFailed:
        """The error that ends a failed change, saying what serves *now* (waited for up to LB_TIMEOUT): one active
        serving, directly and through the load balancer; or one active answering unhealthy (the load balancer
        cannot pass it); or SERVICE DOWN with the next command to run. While a node's container runs it may be
        waiting for a lease a dead node left to expire: then the wait is SERVE_TIMEOUT, not LB_TIMEOUT. When the
        change cannot be undone (``forward``: the database was migrated past the previous image), the message ends
        with the fix forward, in place of a redeploy of the same change. ChangeRefused (exit 4) when a node was left
        stopped for it, or with ``unsafe``."""
        found: dict[str, Container | None] = {}
        for n in self.service.nodes:
            with contextlib.suppress(OperationFailed):  # a node cut off: it can serve no one from here anyway
                found[n.name] = self.inspect(n.name)
        again = "" if any(any(self.health(n)) for n in self.service.nodes) else self.previous_again(found)
        running = any(c is not None and c.running for c in found.values())
        deadline = time.monotonic() + (SERVE_TIMEOUT if running else LB_TIMEOUT)
        while True:
            health = {n.name: self.health(n) for n in self.service.nodes}
            actives = [name for name, (ok, failing) in health.items() if ok or failing]
            through = self.service_answers()
            whole = len(actives) == 1 and (through or not health[actives[0]][0])
            if whole or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        failure = ChangeRefused if self.stuck or unsafe else ChangeFailed
        forward = "".join(f"; {note}" for note in self.forward)
        if whole:
            (active,) = actives
            with contextlib.suppress(OperationFailed):  # it answers, so it has read every file: none stays
                self.shred(active, self.job.all_files)
            failing = health[active][1]
            if failing:
                state = f"{active} is the active, unhealthy (failing: {', '.join(failing)})"
            else:
                state = f"{active} serves"
                via = " and through its load balancer" if self.service.load_balancer else ""
                self.say(active, f"serves (checked directly{via}) after the failure", restored=True)
            standby = self.standby_again(active, found)
            missing = "" if self.stuck else self.without_standby(active, found)  # stuck: ``forward`` says the way
            return failure(f"{what}{again}; {state}{standby}{missing}" + forward)
        seen = ", ".join(actives) + " answer" if actives else "no node serves"
        down = (f"SERVICE DOWN: {seen}" + ("" if through or not self.service.load_balancer
                                           else ", the load balancer answers no 200"))  # fmt: skip
        env = self.fleet.inventory.environment
        self.say("", down, service_down=True)
        if forward:
            return failure(f"{what}{again}; {down}{forward}")
        return failure(f"{what}{again}; {down}; see {program()} status --env {env}, then {program()} deploy "
                       f"--env {env} --service {self.service.name} (or promote-standby --force)")  # fmt: skip

    def previous_again(self, found: dict[str, Container | None]) -> str:
        """After a failed change that left no node answering: a reachable node's own container, stopped by this run
        (the old active of a handover whose new active was then cut off, say) but never replaced by it, is started
        again on the inputs it ran with (``ran_on``), to wait for the lease: the lease (by database time) lets it
        serve only once the holder's lease expired, so the service comes back by itself when the node it lost is
        really gone, and a holder still alive keeps it waiting. ``found``: each reachable node's container, updated
        in place. Returns what was done, as "; ..." ("" when nothing). Not when a node was left stopped because
        its image cannot run on the database (``stuck``)."""
        notes = ""
        for name, c in found.items():
            if self.stuck or c is None or c.running or not self.was_running.get(name) or name in self.moved:
                continue
            job = self.ran_on[name]
            try:
                self.upload(name, job)
                self.x(name, cmd.sh(cmd.start(self.runtime, self.name)))
                self.say(name, f"no node serves: started {self.name} again on its own inputs, to take over once the "
                         "lease is free")  # fmt: skip
                notes += f"; no node served: {name}'s container, stopped by this run, was started again on its own "
                notes += f"inputs, and it {self.settle(name, job)}"
                found[name] = self.inspect(name)
            except OperationFailed as exc:
                notes += f"; starting {name}'s container again (no node served) failed: {exc}"
        return notes

    def without_standby(self, active: str, found: Mapping[str, Container | None]) -> str:
        """After a failed change that ends with ``active`` serving: "; ..." naming each other node that is no standby
        (unreachable, or its container not running, as seen now) and the command that makes it one again; "" when
        the pair has its standby. ``found``: each reachable node's container, as inspected before."""
        env, notes = self.fleet.inventory.environment, ""
        again = f"{program()} deploy --env {env} --service {self.service.name}"
        for n in self.service.nodes:
            if n.name == active:
                continue
            if n.name not in found:
                notes += f"; {n.name} is unreachable, so the pair has no standby: once it is back, {again}"
                continue
            c = found[n.name]
            if c is None or not c.running:
                with contextlib.suppress(OperationFailed):
                    c = self.inspect(n.name)
            if c is None or not c.running:
                state = "gone" if c is None else c.status
                notes += f"; {n.name}'s container is {state}, so the pair has no standby: {again}"
        return notes

    def standby_again(self, active: str, found: Mapping[str, Container | None]) -> str:
        """After a failed change that ends with ``active`` serving: another node whose container is this run's own
        (labelled with this run's config) but stopped (killed after it took over, say) is started again on this
        run's inputs and checked as the standby (settle), so that the pair keeps its standby; ``found``: each
        reachable node's container, as inspected. Returns what was done, as "; ..." ("" when nothing). A container
        on other inputs is left as the failure's undoing left it (a previous container, stopped as it was)."""
        notes = ""
        for name, c in found.items():
            if name == active or c is None or c.running or c.label("config") != self.job.rendered.config_hash:
                continue
            try:
                self.upload(name, self.job)
                self.x(name, cmd.sh(cmd.start(self.runtime, self.name)))
                self.say(name, f"started {self.name} again, as the standby")
                state = self.settle(name, self.job)
                notes += f"; {name}'s container had stopped: started again as the standby, and it {state}"
            except OperationFailed as exc:
                notes += f"; starting {name}'s stopped container again failed: {exc}"
        return notes

    def await_serving(self, node: Node, timeout: float = SERVE_TIMEOUT, accept: Collection[str] = ()) -> float:
        """Seconds until ``node`` answers 200; OperationFailed if its container stops or ``timeout`` passes.

        A node that answers unhealthy (it took the lease) for UNHEALTHY_GRACE seconds is accepted if every
        check it fails is in ``accept`` (those the active it replaces failed: the pair is no worse than
        before), and fails the wait at once otherwise."""
        started, sick_since = time.monotonic(), None
        while not (found := self.health(node))[0]:
            sick_since = (sick_since or time.monotonic()) if found[1] else None
            if sick_since is not None and time.monotonic() - sick_since >= UNHEALTHY_GRACE:
                failing = ", ".join(found[1])
                if set(found[1]) <= set(accept):
                    self.say(node.name, f"holds the lease, unhealthy as the active it replaced (failing: {failing})",
                             failing=list(found[1]))  # fmt: skip
                    break
                raise OperationFailed(
                    f"{self.service.name} {node.name}: holds the lease but answers unhealthy after "
                    f"{UNHEALTHY_GRACE:g}s (failing: {failing}); {self.last_log(node.name)}"
                )
            c = self.inspect(node.name)
            if c is None or not c.running or time.monotonic() - started > timeout:
                state = f"container {c.status} (exit {c.exit_code})" if c else "no container"
                waited = time.monotonic() - started
                raise OperationFailed(
                    f"{self.service.name} {node.name}: not serving {self.job.role.health} after {waited:.0f}s: "
                    f"{state}; {self.last_log(node.name)}"
                )
            time.sleep(POLL)
        return time.monotonic() - started

    def await_waiting(self, node: Node, job: Job | None = None) -> str:
        """Running, not answering its health path, for STANDBY_STABLE seconds in a row, and shown to wait for the
        lease (waiting_evidence: the lease held by the other node), within WAIT_TIMEOUT; returns the evidence.
        ``job``: the inputs the node runs on (this run's by default), whose credentials read the lease.
        OperationFailed when its container stops, it answers (it took the lease) or the time passes."""
        started, stable_since, why = time.monotonic(), None, "not yet running stably"
        with LeaseView(self.fleet, job or self.job) as lease:
            while True:
                c = self.inspect(node.name)
                serving = any(self.health(node))  # answers at all, 200 or not: it holds the lease
                late = time.monotonic() - started > WAIT_TIMEOUT
                if c is None or not c.running or serving or late:
                    late_why = f"after {WAIT_TIMEOUT:g}s, {why}"
                    alone = serving and self.others_silent(node)
                    what = ("it took the lease: no other node answers" if alone else "serves: two actives?" if serving
                            else "no container" if c is None else f"container {c.status}" if not c.running
                            else late_why)  # fmt: skip
                    raise OperationFailed(f"{self.service.name} {node.name}: not a waiting standby ({what}); "
                                          f"{self.last_log(node.name)}")  # fmt: skip
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= STANDBY_STABLE:
                    waiting, why = self.waiting_evidence(node, lease)
                    if waiting:
                        return why
                time.sleep(POLL)

    def others_silent(self, node: Node) -> bool:
        """Does no node of the pair but ``node`` answer its health path (200 or not: a node that answers holds the
        lease)? With ``node`` answering: it holds the lease alone."""
        return not any(any(self.health(n)) for n in self.service.nodes if n is not node)

    def waiting_evidence(self, node: Node, lease: Callable[[], object]) -> tuple[bool, str]:
        """plan.standby_evidence for ``node`` (running, answering nothing): the other node's health answer and the
        id it names, the lease row as ``lease`` reads it (a LeaseView), the role's ``standby_log`` line if logged,
        whether its process is connected to the lease database (lease_connected)."""
        other = next((n for n in self.service.nodes if n.name != node.name), None)
        answers = other is not None and any(self.health(other))
        other_id = app_id(self.answers.get(other.name, b"")) if answers else None
        return standby_evidence(other and other.name, answers, other_id, lease(), self.waiting_logged(node.name),
                                self.lease_connected(node.name))  # fmt: skip

    def lease_connected(self, node: str) -> bool | None:
        """Whether the process of ``node``'s container holds a TCP connection to the lease database's port (the
        job's variable the role's ``lease.port`` names), read from its network namespace's socket tables on the node
        host (facts.container.connected_to); None when the role keeps no lease, the port is no number, the
        container runs no process or the tables cannot be read (then the other evidence decides, as before)."""
        lease = self.job.role.lease
        c = self.inspect(node) if lease is not None else None
        if c is None or not c.pid:
            return None
        try:
            port = int(self.job.variables[lease.port])
        except (KeyError, TypeError, ValueError):
            return None
        return connected_to(self.x(node, socket_table(c.pid), check=False).stdout, port)

    def waiting_logged(self, node: str) -> bool:
        """Whether the node's log has the role's ``standby_log`` line (False when the role names none). Printed
        at info level only: extra evidence of a standby, never required (a LOG_LEVEL of warn hides it)."""
        marker = self.job.role.standby_log
        if marker is None:
            return False
        res = self.x(node, cmd.sh(cmd.logs(self.runtime, self.name)) + " 2>&1", check=False)
        return marker.lower() in res.stdout.lower()

    def last_log(self, node: str) -> str:
        """``last log line: ...``: the last line of the container's log that says something (telling_line)."""
        res = self.x(node, cmd.sh(cmd.logs(self.runtime, self.name, tail=LOG_TAIL)) + " 2>&1", check=False)
        line = telling_line(res.stdout)
        return "last log line: " + self.job.redact.clip(line) if line else "no log output"

    def service_answers(self) -> bool:
        """Is the service served? Through its load balancer when it has one, else by either node."""
        if self.service.load_balancer:
            return http.status(self.service.load_balancer, http.PROBE_TIMEOUT) == 200
        return any(self.serving(n) for n in self.service.nodes)

    def await_service(self) -> None:
        """Wait until the service answers (through its load balancer when it has one), up to LB_TIMEOUT."""
        deadline = time.monotonic() + LB_TIMEOUT
        while not self.service_answers():
            if time.monotonic() > deadline:
                where = self.service.load_balancer or "neither node"
                raise OperationFailed(f"{self.service.name}: {where} does not answer 200 within {LB_TIMEOUT:g}s")
            time.sleep(POLL)

    def handover(self, old: Node, new: Node, restore_standby: bool = True, shred: bool = True) -> float | None:
        """Planned failover: stop the active gracefully (it releases the lease), the standby takes over.

        Returns the outage as probed every 100 ms (None when the service was not answering before the handover:
        OutageProbe.measured). If the standby does not
        serve in time, the old active is started again and the run fails:
        the service ends up served either way (and, in a deploy, the new
        standby goes back to its previous container).
        """
        self.keep_restorable([old.name, new.name])
        was_serving, before = self.health(old)  # an unhealthy active: its successor may fail the same checks only
        with OutageProbe(self.service_answers) as probe:
            try:
                self.x(old.name, cmd.sh(cmd.stop(self.runtime, self.name, int(self.job.role.stop_timeout))))
            except OperationFailed as exc:  # e.g. the active's host cut off: whoever holds the lease serves
                raise self.confirm(
                    f"{exc}; stopping the active {old.name} failed, the handover did not go on"
                ) from None
            try:
                self.await_serving(new, timeout=SERVE_TIMEOUT, accept=before)
            except OperationFailed as exc:
                raise self.confirm(self.undo_handover(old, new, str(exc), restore_standby, before)) from None
            try:
                if not before or self.serving(new):
                    self.await_service()  # through the load balancer too (which answers 503 while the active does)
            except OperationFailed as exc:
                raise self.confirm(str(exc)) from None
            probe.answered_since(time.monotonic())  # the good sample that closes the gap
        stopped = self.inspect(old.name)
        code = None if stopped is None else stopped.exit_code
        how = "" if code in (0, None) else (f"; {old.name} exited {code}, not a clean stop: it may have left its lease "
                                            "to expire, and the standby to wait for that")  # fmt: skip
        outage = probe.measured(was_serving)
        if outage is None:
            since = probe.answering_after
            after = ("it does not answer yet" if since is None else
                     f"it answers since {since:.2f}s after the handover began")  # fmt: skip
            figure = (f"outage not measured: the service was not answering before the handover ({old.name} answered "
                      f"unhealthy, failing: {', '.join(before)}); {after}")  # fmt: skip
        else:
            figure = f"outage {outage:.2f}s"
        self.say(new.name, f"took over from {old.name}: {figure} ({len(probe.samples)} samples){how}",
                 outage_seconds=None if outage is None else round(outage, 3), outage_measured=outage is not None,
                 old_exit_code=code)  # fmt: skip
        if shred:  # else the caller shreds them, once the old active waits again
            self.shred(new.name, self.job.files_read("lease"))
        return outage

    def undo_handover(self, old: Node, new: Node, why: str, restore_standby: bool, accept: Sequence[str]) -> str:
        """The standby did not take over: stopped (gracefully: a node that took the lease releases it), the old
        active started again on its own inputs (on this run's image when the standby migrated the database past
        the old one's, or not at all when nothing can run there: previous_on), then the standby put back (deploy:
        its previous container; promote: the same container, waiting again on its own inputs); returns what was
        done and what each node does, as seen. ``accept``: the checks the old active failed before (it may fail
        them again)."""
        try:
            self.x(new.name, cmd.sh(cmd.stop(self.runtime, self.name, int(self.job.role.stop_timeout))))
        except OperationFailed as exc:
            why = f"{why}; stopping {new.name} failed: {exc}"
        job = self.ran_on[old.name]
        try:  # its own inputs; on this run's image if the database moved past its own (previous_on)
            again = self.previous_on(old.name, self.inspect(old.name))
            if again is None:
                why = f"{why}; the old active {old.name} was not started again (it could not run on the database)"
            else:
                how = self.start_again(old.name, again)
                self.await_serving(old, accept=accept)
                self.shred(old.name, again.all_files)
                why = f"{why}; the old active {old.name} was started again {how}"
        except OperationFailed as exc:
            self.settle(old.name, job)
            why = f"{why}; starting the old active {old.name} again failed too: {exc}"
        if restore_standby:
            return self.restore(new.name, why)
        try:
            standby = self.ran_on[new.name]
            self.upload(new.name, standby)
            self.x(new.name, cmd.sh(cmd.start(self.runtime, self.name)))
            return f"{why}; {new.name} was started again as the standby, and it {self.settle(new.name, standby)}"
        except OperationFailed as exc:
            return f"{why}; starting {new.name} again as the standby failed: {exc}"

    def start_again(self, node: str, again: Job) -> str:
        """``node``'s container, stopped by this run but never replaced (the old active of a handover), started
        again on ``again`` (previous_on's choice): the same container when ``again`` is its own inputs
        (``ran_on``), else a new one on ``again`` (its image cannot run on the database any more). Returns how, for
        a message: "on its own inputs[, on IMAGE]"."""
        if again is self.ran_on[node]:
            self.upload(node, again)  # its files were shredded once read: its own inputs again, never this run's
            self.x(node, cmd.sh(cmd.start(self.runtime, self.name)))
            return "on its own inputs"
        self.x(node, cmd.sh(cmd.remove(self.runtime, self.name)))  # its image cannot run any more
        self.start_new(node, again)
        return f"on its own inputs, on {self.service.image}"

    def restore(self, node: str, why: str) -> str:
        """rollback(), whose own failure (the node unreachable, say) is said in the message rather than raised:
        what serves is confirmed after it either way."""
        try:
            return self.rollback(node, why)
        except OperationFailed as exc:
            return f"{why}; putting {node}'s previous container back failed too: {exc}"

    def execute(self, plan: ServicePlan) -> None:
        """Carry the plan out; a failed step puts the node's previous container back (on its own inputs) and
        raises, saying what serves now (confirm). When ``stop`` is set (Ctrl-C, SIGTERM), the run stops at the
        next safe point (stop_action, carried out by stop_before), raising Interrupted that says what it did and
        what runs now. A stop that came past the last safe point (while the old active was replaced after its
        handover) lets the change run to its end, and the Interrupted says so, naming the step it came during."""
        try:
            self.steps(plan)
        except ChangeFailed:
            raise
        except OperationFailed as exc:  # a failure no step undid (a node cut off, say): what serves now, said
            raise self.confirm(str(exc)) from None
        if not self.stop.is_set():
            return
        if not plan.steps:
            raise Interrupted(f"{self.service.name}: up to date, nothing to change when the stop came; "
                              f"{self.standing()}")  # fmt: skip
        during = plan.steps[(len(plan.steps) if self.stop_seen is None else self.stop_seen) - 1]
        raise Interrupted(f"{self.service.name}: the stop came during `{during.describe()}`, past the last safe "
                          f"point, so the change went on to its end: it is complete; {self.standing()}")  # fmt: skip

    def stop_before(self, plan: ServicePlan, i: int) -> None:
        """A stop (Ctrl-C, SIGTERM) seen before step ``i``, carried out as stop_action says: returns (the run goes
        on) only when step ``i`` is no safe point; raises Interrupted otherwise, its message saying what was done
        and what runs now (standing). Before the handover of a rolling replace, the nodes this run replaced go back
        on their previous containers and inputs, as after a failure (restore), so the pair is left as it was found
        (issue 13 rv7 #6: a standby left on the new inputs made a mixed pair that promote-standby refuses). After the
        handover, the old active (stopped by it) is started again on its own inputs as the standby, and the run
        stops there rather than go on to replace it (rv7 #7); the message names the deploy that finishes the change."""
        action = stop_action(plan, i)
        if action is None:
            if self.stop_seen is None:
                self.stop_seen = i
            return
        name, step = self.service.name, plan.steps[i]
        if action == "stop":
            why = f"{name}: stopped before `{step.describe()}` as asked" + ("; nothing was changed" if i == 0 else "")
        elif action == "undo":
            why = f"{name}: stopped before `{step.describe()}` as asked, undoing this run's change"
            for node in dict.fromkeys(s.node for s in plan.steps[:i] if s.action == "replace"):
                why = self.restore(node, why)
        else:  # "restart": just after the handover
            handover = plan.steps[i - 1]
            old, env = handover.node, self.fleet.inventory.environment
            why = (f"{name}: stopped after `{handover.describe()}` as asked, once the handover was done, before "
                   f"`{step.describe()}`{self.standby_again_on_own(old)}; {handover.to} runs this change, {old} "
                   f"does not: {program()} deploy --env {env} --service {name} finishes it")  # fmt: skip
        forward = "".join(f"; {note}" for note in self.forward)
        raise Interrupted(f"{why}{forward}; {self.standing()}")

    def standby_again_on_own(self, node: str) -> str:
        """The old active of a finished handover (its container stopped by it) started again on its own inputs
        (previous_on) and checked as the standby (settle); returns what was done, as "; ...". Never raises: a
        failure is said (what runs is said after it, by standing)."""
        try:
            again = self.previous_on(node, self.inspect(node))
            if again is None:
                return f"; {node}'s container was left stopped (it could not run on the database)"
            how = self.start_again(node, again)
            self.say(node, f"started {self.name} again {how}, as the standby")
            return f"; {node}'s container was started again {how} as the standby, and it {self.settle(node, again)}"
        except OperationFailed as exc:
            return f"; starting {node}'s container again as the standby failed: {exc}"

    def steps(self, plan: ServicePlan) -> None:
        nodes = {n.name: n for n in self.service.nodes}
        self.keep_restorable(step.node for step in plan.steps if step.action in ("replace", "handover"))
        for i, step in enumerate(plan.steps):
            if self.stop.is_set():
                self.stop_before(plan, i)
            node = nodes[step.node]
            if replaces_a_standby(step) and any(health := self.health(node)):
                raise self.confirm(f"{self.service.name} {step.node}: holds the lease now (it answers "
                                   f"{self.job.role.health}{'' if health[0] else ' unhealthy'}), but the plan took it "
                                   "for the standby: the active changed since the plan (a failover, its old active cut "
                                   f"off?); {step.node} was not replaced; deploy again to plan from what runs now",
                                   unsafe=True)  # fmt: skip
            self.say(step.node, step.describe())
            if step.action == "handover":
                self.outages.append(self.handover(node, nodes[step.to]))
                continue
            try:
                if step.action == "replace":
                    self.replace(step.node)
                elif step.action == "await-serving":
                    took = self.await_serving(node)
                    self.say(step.node, f"serving after {took:.1f}s")
                    self.shred(step.node, self.job.all_files)
                else:
                    evidence = self.await_waiting(node)
                    self.say(step.node, "waiting for the lease", evidence=evidence)
                    self.shred(step.node, self.job.files_read("start"))
            except OperationFailed as exc:
                if step.action == "await-waiting" and any(self.health(node)) and self.others_silent(node):
                    # the node the pair handed over to stopped answering, and this one, on this change's inputs,
                    # took the lease it left: the change is done here; putting this node back would stop the one
                    # node serving (rv4: a second outage of 1.9 s, and a message of "two actives")
                    raise self.confirm(f"{self.service.name} {step.node}: took the lease while it was awaited as the "
                                       "standby, as no other node answers (one cut off, or its container gone?); "
                                       "it runs this change's inputs and was left serving") from None  # fmt: skip
                raise self.confirm(self.restore(step.node, str(exc))) from None

    def refuse_lease_move(self) -> None:
        """Unsafe (exit 4), before anything changed, when the change moves the lease elsewhere (plan.lease_moves)."""
        lease = self.job.role.lease
        if lease is None:
            return
        wanted = self.job.variables
        for node, job in self.ran_on.items():
            if not self.was_running.get(node):  # a stopped container holds no lease: a stopped pair may move
                continue
            moves = lease_moves((lease.host, lease.port, lease.database), job.variables, wanted)
            if moves:
                raise Unsafe(f"{self.service.name} {node}: the change moves the lease ({', '.join(moves)}): a rolling "
                             "replace would leave an active in each database; stop both nodes' containers "
                             f"(docker stop {self.name}), then deploy")  # fmt: skip

    def database_version(self) -> str | None:
        """The version the service's database last ran (lease.recorded_version, logged in with this run's
        credentials, from memory). None, said in a warning line, when the database cannot be reached from here: the
        nodes' own checks still run. Raises Unsafe (exit 4), before anything changed, when the server refuses
        those credentials (a wrong password in the backend, say): the new standby would fail at boot, after the
        old one was stopped."""
        try:
            return recorded_version(self.fleet, self.job)
        except LoginRefused as exc:
            lease = self.job.role.lease
            refs = " and ".join(self.secret_reference(name) for name in (lease.user, lease.password))
            raise Unsafe(f"{exc}; the database refuses the credentials this run would give the nodes ({refs}): a "
                         "node started on them could not boot; nothing was changed (fix the secret in its backend, "
                         "then deploy)") from None  # fmt: skip
        except OperationFailed as exc:
            self.say("", f"warning: {exc}; this run's database credentials and the image's version are not "
                     "checked against the database")  # fmt: skip
            return None

    def refuse_downgrade(self, recorded: str | None) -> None:
        """Unsafe (exit 4), before anything changed, when the image is older than ``recorded``, the version the
        database last ran: the node would refuse it at boot, and only once it took the lease."""
        tag = cmd.image_tag(self.service.image)
        if older_than(tag, recorded):
            raise Unsafe(f"{self.service.name}: {self.service.image} is version {tag}, older than {recorded}, the "
                         "version its database last ran: the node refuses to start on it (a database migrated by "
                         "a newer version); roll the database back first, or deploy a newer image")  # fmt: skip

    def secret_reference(self, name: str) -> str:
        """``services.cl1.secrets.db (backend aws: 'cl1/DBSecret' key 'password', version 1a2b3c4d)``: where a
        secret of this run comes from (the version read, when the backend keeps versions), never its value."""
        ref, version = self.service.secrets[name], self.job.secrets[name].version
        key = f" key {ref.key!r}" if ref.key else ""
        return (f"services.{self.service.name}.secrets.{name} (backend {ref.backend}: {ref.name!r}{key}"
                + (f", version {version[:8]})" if version else ")"))  # fmt: skip

    def show_diff(self, states: Mapping[str, NodeView], recorded: str | None) -> None:
        """What the change does, node by node, as event lines (nodeops.diff): the old side of a node is what its
        container records, its files rendered again in memory (restore_job); no secret value is in any line."""
        olds, unrestorable, notes, masks = {}, {}, [], [self.job.redact]
        for name, state in states.items():
            c = state.container
            if c is None:
                olds[name] = Side()
                continue
            recorded_vars = c.label("variables")
            variables = self.job.role.read_variables(json.loads(recorded_vars)) if recorded_vars else None
            files = None
            try:
                job = restore_job(self.fleet.inventory, self.job, name, c)
                files, masks = job.rendered.files, [*masks, job.redact]
                if job.rendered.config_hash != c.label("config"):
                    why = ("the role's templates or defaults changed since {} started, and it records no text of "
                           "its files (an older nodeops)" if c.label(TEXTS_LABEL) is None else "the role's defaults, "
                           "files, command or secret files' templates changed since {} started")  # fmt: skip
                    notes.append(f"{name}: {why.format(c.name)}: its files are compared as today's templates render "
                                 "its inputs")  # fmt: skip
            except Unsafe as exc:
                unrestorable[name] = str(exc)
            digest = c.label("digest")
            olds[name] = Side(c.reference or None, None if digest in (None, "none") else digest, variables, files,
                              json.loads(c.label("secrets") or "{}"))  # fmt: skip
        new = self.job.side(self.digest)
        for line in summary(service_diff(self.service.name, olds, new, recorded, unrestorable, notes)):
            body = () if self.report.json else line.body  # a person reads the diff; JSON has it as unified_diff
            text = "\n".join([line.message, *(" " * BODY_INDENT + b for b in body)])
            data = json.dumps(dict(line.data), default=str)
            for mask in masks:  # belt and braces: by construction no line holds a secret
                text, data = mask(text), mask(data)
            self.say(line.node, text, **json.loads(data))

    def standing(self) -> str:
        """What runs where now, in one line (for an interrupted run's message and audit entry): ``now()`` in words."""
        return standing_line(self.now())

    def now(self) -> dict:
        """What runs on the pair at this moment, observed now (each node's container inspected, its health path
        asked): ``now_record``'s shape. A node that cannot be reached is said so; nothing is raised."""
        seen: dict[str, tuple[Container | None, bool, tuple[str, ...]] | None] = {}
        for n in self.service.nodes:
            try:
                if n.name not in self.conns:
                    self.conns[n.name], _ = self.fleet.connect(n)
                found = self.inspect(n.name)
            except NodeopsError:
                seen[n.name] = None
                continue
            serving, failing = self.health(n)
            seen[n.name] = (found, serving, failing)
        return now_record(seen)

    # -- verify ------------------------------------------------------------------
    def verify(self, tolerated: Collection[str] = ()) -> dict:
        """The end state, checked: returns who is active, for the report. ``tolerated``: the checks the active
        failed before the run; an active that ends failing only those is reported, any other failure fails."""
        states = {n.name: (self.inspect(n.name), *self.health(n)) for n in self.service.nodes}
        active = [name for name, (_, serving, failing) in states.items() if serving or failing]
        if len(active) != 1:
            raise OperationFailed(f"{self.service.name}: after deploy {len(active)} nodes serve, expected one")
        failing = states[active[0]][2]
        if failing and not set(failing) <= set(tolerated):
            raise OperationFailed(f"{self.service.name}: after deploy the active {active[0]} answers unhealthy "
                                  f"(failing: {', '.join(failing)})")  # fmt: skip
        keep_after = set(self.job.files_read("lease"))
        for name, (container, serving, answers_sick) in states.items():  # not `failing`: the active's, used below
            if container is None or not container.running:
                raise OperationFailed(f"{self.service.name} {name}: container not running after deploy")
            allowed = set() if serving or answers_sick else keep_after
            if self.service.secret_files == "shred":
                left = self.x(name, file_facts.list_files(self.service.name)).stdout.split("\n")
                extra = {line.split()[0] for line in left if line.strip()} - allowed
                if extra:
                    self.shred(name, sorted(extra))  # what an interrupted run left behind
            exposed = "\n".join((*container.env, *container.args))  # what `docker inspect` shows anyone
            if self.job.profile != "v1" and self.job.redact.leaks(exposed):
                raise Unsafe(f"{self.service.name} {name}: a secret value is in the container's environment or command")
        if failing:
            self.say(active[0], f"active, UNHEALTHY as before this run (failing: {', '.join(failing)})",
                     failing=list(failing))  # fmt: skip
            return {"active": active[0], "failing": list(failing)}
        if self.service.load_balancer:
            self.await_service()
        return {"active": active[0]}

    # -- the whole ---------------------------------------------------------------
    def run(self, dry_run: bool) -> dict:
        states, desired = self.observe(dry_run)
        plan = plan_service(self.service, states, desired)
        steps = [s.describe() for s in plan.steps]
        moved = secret_changes(states.values(), self.job.rendered.secret_versions)
        try:
            recorded, refused = (self.database_version() if plan.changes else None), None
        except Unsafe as exc:  # credentials the database refuses: said after the diff, which shows what moved
            recorded, refused = None, exc
        self.recorded = recorded
        self.show_diff(states, recorded)
        self.say("", f"plan: {plan.reason}" + "".join(f"; {step}" for step in steps), steps=steps)
        if refused is not None:
            raise refused
        self.keep_restorable(step.node for step in plan.steps if step.action in ("replace", "handover"))
        self.refuse_lease_move()
        self.refuse_downgrade(recorded)
        if dry_run:
            return DryRun(service=self.service.name, changed=plan.changes, planned=steps, secrets_moved=moved).record()
        try:
            self.execute(plan)
        except Interrupted:
            self.drop_previous()  # stopped at a safe point: the pair is whole, on what each label says
            raise
        try:
            result = self.verify(tolerated=[name for s in states.values() for name in s.failing])
        except ChangeFailed:
            raise
        except OperationFailed as exc:  # e.g. the new active died after the takeover: what serves now, said
            raise self.confirm(str(exc)) from None
        self.drop_previous()
        self.say(result["active"], "active" + ("" if plan.changes else "; nothing changed"))
        return Deployed(service=self.service.name, changed=plan.changes, **result, **self.ran()).record()

    def drop_previous(self) -> None:
        """Remove the previous containers, kept until the service succeeded: any failure before could roll back."""
        for node in self.conns:
            self.x(node, cmd.sh(cmd.remove(self.runtime, cmd.previous_name(self.service.name))), check=False)

    def ran(self) -> dict:
        """What now runs, for the audit log (``fab rollback`` reads it back): no secret in it."""
        return {"image": self.service.image, "digest": self.digest, "config": self.job.rendered.config_hash,
                "variables": dict(self.service.variables),
                "secret_versions": dict(self.job.rendered.secret_versions),
                "files": recorded_texts(self.job)}  # fmt: skip


def stop_action(plan: ServicePlan, i: int) -> str | None:
    """What a run asked to stop (Ctrl-C, SIGTERM) does before step ``i`` of ``plan``, so that the pair is left whole:

    - ``"stop"``: stop as things are: before the first step, or (a fresh start) before the next node is replaced
      once the first one serves;
    - ``"undo"``: before the handover of a rolling replace (or while the standby is awaited), put the nodes this run
      replaced back on their previous containers, then stop: the pair as it was found;
    - ``"restart"``: just after a handover, start the old active (stopped by it) again on its own inputs as the
      standby, then stop, rather than replace it;
    - None: no safe point (a node replaced but not yet awaited, the old active being replaced after its
      handover): go on to the next step.

    A replace counts as a standby's when the plan awaits that node as a waiting standby right after it."""
    if i == 0:
        return "stop"
    done = plan.steps[:i]
    if done[-1].action == "handover":
        return "restart"
    if any(s.action == "handover" for s in done):
        return None
    replaced = [j for j, s in enumerate(done) if s.action == "replace"]
    if replaced and all(j + 1 < len(plan.steps) and plan.steps[j + 1].action == "await-waiting" for j in replaced):
        return "undo"
    return "stop" if plan.steps[i].action == "replace" else None


def now_record(seen: Mapping[str, tuple[Container | None, bool, tuple[str, ...]] | None]) -> dict:
    """What runs on a pair, from what was observed last: ``seen`` maps each node's name to (its service container
    or None, whether its health path answered 200, the checks it says fail) or to None when it could not be
    reached. Returns ``{"active": the one node that answers (200 or unhealthy) or None, "nodes": {name: {"state",
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
    answering = [name for name, node in nodes.items() if node.state in ("serves", "unhealthy")]
    return Now(active=answering[0] if len(answering) == 1 else None, nodes=nodes).record()


def standing_line(record: Mapping) -> str:
    """A ``now_record`` in one line: "now: a serves (2.11.0, config 0123456789ab), b waits (...)"."""
    parts = []
    for name, node in record["nodes"].items():
        held = f" ({node['version']}, config {str(node['config'])[:12]})" if "config" in node else ""
        parts.append(f"{name} {node['state']}{held}")
    return "now: " + ", ".join(parts)


def not_started(service: str) -> Callable[[], dict]:
    """The work of a service the run was asked to stop before it began."""

    def refuse() -> dict:
        raise Interrupted(f"{service}: not started: the run was asked to stop")

    return refuse


def per_service(report: Reporter, service: str, work: Callable[[], dict],
                now: Callable[[], dict] | None = None) -> dict:  # fmt: skip
    """``work()``'s result for one service or, when it fails, ``{"service", "error"}`` with the failure reported:
    one service failing never stops the others (errors.raise_failures makes their errors the run's). ``now``
    (ServiceDeploy.now): observed once the work ended, succeeded or not, and added as the result's ``now``, so that
    the audit log's end entry says what runs after the last step, not what a message said before it."""
    try:
        result = work()
    except NodeopsError as exc:
        stopped = isinstance(exc, Interrupted)
        report(service, "", f"{'STOPPED' if stopped else 'FAILED'}: {exc}", outcome="stopped" if stopped else "failed")
        result = {"service": service, "error": exc}
    return result if now is None else {**result, "now": now()}


def deploy(fleet: Fleet, jobs: Sequence[Job], report: Reporter, dry_run: bool = False,
           stop: StopRequests | None = None, inexact_ok: bool = False) -> list[dict]:  # fmt: skip
    """Deploy every job's service, in parallel, each pair on its own. A service that failed has
    ``error`` (its NodeopsError) in its result; errors.raise_failures turns those into the run's.
    ``stop``: once set, no service starts and each running one stops at its next safe point.
    ``inexact_ok``: a container whose inputs cannot be rendered again may be replaced (restore_job)."""

    def one(job: Job) -> dict:
        run = ServiceDeploy(job, fleet, report)
        run.stop, run.inexact_ok = stop or run.stop, inexact_ok
        if run.stop.is_set():
            return per_service(report, job.service.name, not_started(job.service.name))
        return per_service(report, job.service.name, lambda: run.run(dry_run), None if dry_run else run.now)

    with ThreadPoolExecutor(max_workers=min(8, len(jobs) or 1)) as pool:
        return list(pool.map(one, jobs))
