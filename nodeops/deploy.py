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

Secret files and restarts (documented in the README): a node reads its
config, secrets and password files when its process starts, and `.api` only
once it holds the lease. Each file is shredded as soon as its node has read
it: start files once the container runs, lease files once it serves. A
standby therefore keeps `.api` (0400, RAM only) until it takes over. With
shredded files a container cannot start again by itself, so the inventory
refuses an automatic restart policy unless `secret_files: keep`.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

from nodeops.commands import node as cmd
from nodeops.errors import NodeopsError, OperationFailed, Unsafe
from nodeops.inventory import Inventory, Node, Service
from nodeops.plan import Container, Desired, NodeState, ServicePlan, parse_inspect, plan_service
from nodeops.remote import CommandResult, Fleet, PinnedConnection, execute
from nodeops.render import Rendered, render
from nodeops.roles import Role, profile_name, role_for
from nodeops.secrets import Secret, resolve

SERVE_TIMEOUT = 120.0  # a node's first boot migrates its database
WAIT_TIMEOUT = 60.0
LB_TIMEOUT = 15.0
STANDBY_STABLE = 2.0  # a standby must stay up, not serving, this long
POLL = 0.2


class Redactor:
    """Masks every form a secret value can take in text shown to a person or a log.

    Values under 4 characters (a short user name) are not hunted: they would
    mask unrelated text, and no password the node accepts is that short.
    """

    def __init__(self, secrets: Iterable[Secret]) -> None:
        forms = set()
        for s in secrets:
            value = s.reveal()
            forms |= {value, quote(value, safe=""), json.dumps(value)[1:-1]}
        self.forms = sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, "*****")
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

    def __init__(self, json_lines: bool, write: Callable[[str], None] = print) -> None:
        self.json = json_lines
        self.write = write
        self.started = time.monotonic()
        self.lock = threading.Lock()
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
            else:
                self.write(f"{elapsed:7.1f}s  {service:<12} {node or '-':<12} {message}")
            for sink in self.sinks:
                sink(event)


class OutageProbe:
    """Samples a check every 100 ms while a handover runs; the outage is the longest run of
    failed samples, from the last good one before it (or, when none came before, its first
    failed sample) to the first good one after. Entering waits for the first sample, so that
    the measure starts before whatever the block does (stopping the active)."""

    def __init__(self, check: Callable[[], bool], interval: float = 0.1, limit: float = 600) -> None:
        self.check, self.interval, self.limit = check, interval, limit
        self.samples: list[tuple[float, bool]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.limit  # bounded, whatever happens to the caller
        while not self.stop.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            try:
                ok = self.check()
            except Exception:  # noqa: BLE001 (a probe that dies would measure nothing: any failure is a bad sample)
                ok = False
            self.samples.append((t, ok))
            time.sleep(max(0.0, self.interval - (time.monotonic() - t)))

    def __enter__(self) -> OutageProbe:
        self.thread.start()
        deadline = time.monotonic() + 5  # one sample takes at most the check's own timeout
        while not self.samples and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

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

    def files_read(self, when: str) -> tuple[str, ...]:
        """The node's files it reads at process start ("start") or once it holds the lease ("lease")."""
        profile = self.role.profile(self.profile)
        return tuple(name for name in self.rendered.files if profile.files[name].read == when)

    @property
    def all_files(self) -> tuple[str, ...]:
        return tuple(self.rendered.files)


def prepare(inventory: Inventory, names: Sequence[str] | None = None, admin: bool = False) -> list[Job]:
    """Preflight: every role, secret and file for the chosen services, or exit 2. No host is contacted.

    ``admin``: also the secrets only a rotation needs (an admin role's); other commands never read them,
    so a CI job that deploys needs no admin credential."""
    services = [inventory.services[n] for n in names] if names else list(inventory.services.values())
    return [job_for(inventory, service, admin) for service in services]


def job_for(inventory: Inventory, service: Service, admin: bool = False,
            secrets: Mapping[str, Secret] | None = None) -> Job:  # fmt: skip
    """One service's preflight (``service`` may differ from the inventory's, e.g. an older image to roll back to;
    ``secrets``: already resolved for it, not read again)."""
    role = role_for(inventory, service)
    profile = profile_name(role, service, str(inventory.source))
    if secrets is None:
        secrets = resolve(inventory, service, skip=() if admin else role.admin_secrets)
    rendered = render(role, profile, service, secrets)
    return Job(service, role, profile, rendered, Redactor(secrets.values()), secrets)


class ServiceDeploy:
    def __init__(self, job: Job, fleet: Fleet, report: Reporter) -> None:
        self.job = job
        self.service = job.service
        self.fleet = fleet
        self.report = report
        self.runtime = job.service.runtime
        self.name = cmd.container_name(job.service.name)
        self.conns: dict[str, PinnedConnection] = {}
        self.digest: str | None = None  # of the image as pulled, recorded on the containers
        self.answers: dict[str, bytes] = {}  # node name -> body of its latest 200 health reply
        self.outages: list[float] = []  # of each planned handover execute() ran, as probed (seconds)

    # -- plumbing ----------------------------------------------------------------
    def say(self, node: str, message: str, **data) -> None:
        self.report(self.service.name, node, message, **data)

    def x(self, node: str, command: str, stdin: bytes | None = None, check: bool = True) -> CommandResult:
        """Run a shell line on ``node``; a failure names service, node, command and (redacted) reason."""
        res = execute(self.conns[node], command, stdin=stdin, timeout=self.fleet.settings.command_timeout)
        if check and res.exit_code:
            raise OperationFailed(f"{self.service.name} {node}: `{' '.join(command.split()[:2])}` failed: "
                                  f"{self.why(res)}")  # fmt: skip
        return res

    def why(self, res: CommandResult) -> str:
        """A failed command's reason: its last line of output (redacted, clipped), else its exit status."""
        output = (res.stderr.strip() or res.stdout.strip()).splitlines()
        return self.job.redact.clip(output[-1]) if output else f"exit {res.exit_code}"

    def inspect(self, node: str, name: str | None = None) -> Container | None:
        res = self.x(node, cmd.sh(cmd.inspect(self.runtime, name or self.name)), check=False)
        return parse_inspect(res.stdout) if res.exit_code == 0 else None

    def serving(self, node: Node) -> bool:
        """Does ``node`` answer its health path with 200? The body is kept in ``answers`` (fab check reads who
        answered from the very reply that made it the active)."""
        reply = self.fleet.http_get(node.host, self.job.role.port, self.job.role.health)
        if reply is None or reply[0] != 200:
            self.answers.pop(node.name, None)
            return False
        self.answers[node.name] = reply[1]
        return True

    def connect_all(self) -> None:
        """Every node of the service, or the run stops here, before anything changed."""
        for node in self.service.nodes:
            conn, _ = self.fleet.connect(node)
            self.conns[node.name] = conn

    # -- observe -----------------------------------------------------------------
    def observe(self) -> tuple[dict[str, NodeState], Desired]:
        image = self.service.image
        ids = set()
        self.connect_all()
        for node in self.service.nodes:
            probe = f"mkdir -p -m 0755 {cmd.FILES_ROOT} && " + cmd.sh(cmd.filesystem_type(cmd.FILES_ROOT))
            fs = self.x(node.name, probe)
            if fs.stdout.strip() != "tmpfs":
                raise Unsafe(f"{self.service.name} {node.name}: {cmd.FILES_ROOT} is on {fs.stdout.strip()}, not RAM "
                             "(tmpfs): secret files would reach the disk; mount a tmpfs on /run")  # fmt: skip
            ids.add(self.pull(node.name, image))
        if len(ids) != 1:
            raise OperationFailed(f"{self.service.name}: {image} resolves to different images on the nodes: {ids}")
        image_id, self.digest = ids.pop()
        return self.states(), Desired(image, image_id, self.job.rendered.config_hash)

    def pull(self, node: str, image: str) -> tuple[str, str | None]:
        """Pull ``image`` on ``node``: (image id, registry digest). Pulling is how a tag moved in the registry is
        noticed; when the pull fails (the registry is down) and the node already holds the image, that one is used
        and the step line says so (pinned by digest, it is exactly the image asked for; a tag is the one pulled
        last). An image the node does not hold fails the run with the pull's error."""
        pulled = self.x(node, cmd.sh(cmd.pull(self.runtime, image)), check=False)
        held = self.x(node, cmd.sh(cmd.image_id(self.runtime, image)), check=pulled.exit_code == 0)
        if held.exit_code:
            raise OperationFailed(f"{self.service.name} {node}: `{self.runtime} pull` failed: {self.why(pulled)}")
        image_id, digest = cmd.parse_image_id(held.stdout, image)
        if pulled.exit_code == 0:
            self.say(node, f"pulled {image} ({digest or 'no registry digest'})", digest=digest)
        else:
            which = ("pinned by digest: the very image" if "@" in image else
                     "the tag as last pulled here: a move of the tag in the registry is not seen")  # fmt: skip
            self.say(node, f"could not pull {image} ({self.why(pulled)}); using the image this node holds, "
                     f"{image_id[:19]} ({which})", digest=digest, pull_failed=True)  # fmt: skip
        return image_id, digest

    def states(self) -> dict[str, NodeState]:
        """Each node's container and whether it serves (once observe() has connected)."""
        return {n.name: NodeState(n, self.inspect(n.name), self.serving(n)) for n in self.service.nodes}

    # -- steps -------------------------------------------------------------------
    def run_spec(self) -> cmd.RunSpec:
        role, r = self.job.role, self.job.rendered
        labels = {"service": self.service.name, "role": role.name, "profile": self.job.profile,
                  "version": cmd.image_tag(self.service.image), "config": r.config_hash,
                  "digest": self.digest or "none"}  # fmt: skip
        return cmd.RunSpec(
            runtime=self.runtime, service=self.service.name, image=self.service.image, command=r.command,
            user=role.user, port=role.port, mount=role.mount, labels=labels, restart=self.service.restart,
            log_driver=self.service.log_driver, log_options=self.service.log_options,
            stop_timeout=int(role.stop_timeout), env_file=r.env_file,
        )  # fmt: skip

    def upload(self, node: str) -> None:
        """The node's files, each created 0400 for the container user before its first byte."""
        uid = self.job.role.user
        self.x(node, cmd.prepare_dir(self.service.name, uid))
        for f in self.job.rendered.files.values():
            self.x(node, cmd.write_file(self.service.name, f.name, uid), stdin=f.data)

    def shred(self, node: str, names: Sequence[str]) -> None:
        if names and self.service.secret_files == "shred":
            self.x(node, cmd.shred(self.service.name, names))
            self.say(node, f"shredded {', '.join(names)}")

    def replace(self, node: str) -> None:
        previous = cmd.previous_name(self.service.name)
        self.upload(node)
        old = self.inspect(node)
        if old:
            self.x(node, cmd.sh(cmd.remove(self.runtime, previous)) + " >/dev/null 2>&1; " +
                   cmd.sh(cmd.rename(self.runtime, self.name, previous)))  # fmt: skip
            if old.running:
                self.x(node, cmd.sh(cmd.stop(self.runtime, previous, int(self.job.role.stop_timeout))))
        self.x(node, cmd.sh(cmd.run(self.run_spec())))
        if self.job.rendered.env_file:  # the docker CLI has read it; the container never sees the file
            self.shred(node, [self.job.rendered.env_file])
        self.say(node, f"started {self.name} ({self.service.image}, config {self.job.rendered.config_hash[:12]})")

    def rollback(self, node: str, why: str) -> str:
        """Put the previous container back on ``node``, if there was one; returns what was done."""
        previous = cmd.previous_name(self.service.name)
        self.x(node, cmd.sh(cmd.remove(self.runtime, self.name)), check=False)
        if not self.inspect(node, previous):
            self.shred(node, self.job.all_files)
            return f"{why}; no previous container to roll back to"
        self.upload(node)  # its files were shredded; the secrets have not changed
        self.x(node, cmd.sh(cmd.rename(self.runtime, previous, self.name), cmd.start(self.runtime, self.name)))
        self.say(node, "rolled back to the previous container")
        self.settle(node)
        return f"{why}; rolled back to the previous container"

    def settle(self, name: str) -> None:
        """After a rollback: shred what the restored node has read once it waits (stably: its log
        may still hold the last run's lines) or serves, and everything if it does neither. No
        file outlives a run, failed or not."""
        node = next(n for n in self.service.nodes if n.name == name)
        try:
            self.await_waiting(node)
        except OperationFailed:
            return self.shred(name, self.job.all_files)  # it serves (all read), or it is down
        self.shred(name, self.job.files_read("start"))

    def await_serving(self, node: Node, timeout: float = SERVE_TIMEOUT) -> float:
        started = time.monotonic()
        while not self.serving(node):
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

    def await_waiting(self, node: Node) -> None:
        """Running, not serving, waiting for the lease, for STANDBY_STABLE seconds in a row."""
        started, stable_since = time.monotonic(), None
        while True:
            c = self.inspect(node.name)
            serving = self.serving(node)
            if c is None or not c.running or serving or time.monotonic() - started > WAIT_TIMEOUT:
                what = "serves: two actives?" if serving else (f"container {c.status}" if c else "no container")
                raise OperationFailed(f"{self.service.name} {node.name}: not a waiting standby ({what}); "
                                      f"{self.last_log(node.name)}")  # fmt: skip
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= STANDBY_STABLE and self.waiting_logged(node.name):
                return
            time.sleep(POLL)

    def waiting_logged(self, node: str) -> bool:
        marker = self.job.role.standby_log
        res = self.x(node, cmd.sh(cmd.logs(self.runtime, self.name)) + " 2>&1", check=False)
        return marker is None or marker.lower() in res.stdout.lower()

    def last_log(self, node: str) -> str:
        res = self.x(node, cmd.sh(cmd.logs(self.runtime, self.name, tail=3)) + " 2>&1", check=False)
        lines = [line for line in res.stdout.strip().splitlines() if line.strip()]
        return "last log line: " + self.job.redact.clip(lines[-1]) if lines else "no log output"

    def service_answers(self) -> bool:
        """Is the service served? Through its load balancer when it has one, else by either node."""
        if self.service.load_balancer:
            try:  # short: a request stuck on a node going away must not stall the 100 ms probe
                with urllib.request.urlopen(self.service.load_balancer, timeout=0.5) as resp:
                    return resp.status == 200
            except (OSError, http.client.HTTPException):  # URLError is an OSError
                return False
        return any(self.serving(n) for n in self.service.nodes)

    def await_service(self) -> None:
        """Wait until the service answers (through its load balancer when it has one), up to LB_TIMEOUT."""
        deadline = time.monotonic() + LB_TIMEOUT
        while not self.service_answers():
            if time.monotonic() > deadline:
                where = self.service.load_balancer or "neither node"
                raise OperationFailed(f"{self.service.name}: {where} does not answer 200 within {LB_TIMEOUT:g}s")
            time.sleep(POLL)

    def handover(self, old: Node, new: Node, restore_standby: bool = True) -> float:
        """Planned failover: stop the active gracefully (it releases the lease), the standby takes over.

        Returns the outage as probed every 100 ms. If the standby does not
        serve in time, the old active is started again and the run fails:
        the service ends up served either way (and, in a deploy, the new
        standby goes back to its previous container).
        """
        with OutageProbe(self.service_answers) as probe:
            self.x(old.name, cmd.sh(cmd.stop(self.runtime, self.name, int(self.job.role.stop_timeout))))
            try:
                self.await_serving(new, timeout=SERVE_TIMEOUT)
            except OperationFailed as exc:
                self.upload(old.name)
                self.x(old.name, cmd.sh(cmd.start(self.runtime, self.name)))
                self.await_serving(old)
                self.shred(old.name, self.job.all_files)
                why = f"{exc}; the old active {old.name} was started again and serves"
                raise OperationFailed(self.rollback(new.name, why) if restore_standby else why) from None
            self.await_service()  # through the load balancer too
            time.sleep(0.2)  # a good sample after the gap
        stopped = self.inspect(old.name)
        code = None if stopped is None else stopped.exit_code
        how = "" if code in (0, None) else (f"; {old.name} exited {code}, not a clean stop: it may have left its lease "
                                            "to expire, and the standby to wait for that")  # fmt: skip
        self.say(new.name, f"took over from {old.name}: outage {probe.outage:.2f}s ({len(probe.samples)} samples){how}",
                 outage_seconds=round(probe.outage, 3), old_exit_code=code)  # fmt: skip
        self.shred(new.name, self.job.files_read("lease"))
        return probe.outage

    def execute(self, plan: ServicePlan) -> None:
        nodes = {n.name: n for n in self.service.nodes}
        for step in plan.steps:
            node = nodes[step.node]
            self.say(step.node, step.describe())
            if step.action == "replace":
                self.replace(step.node)
            elif step.action == "handover":
                self.outages.append(self.handover(node, nodes[step.to]))
            else:
                try:
                    if step.action == "await-serving":
                        took = self.await_serving(node)
                        self.say(step.node, f"serving after {took:.1f}s")
                        self.shred(step.node, self.job.all_files)
                    else:
                        self.await_waiting(node)
                        self.say(step.node, "waiting for the lease")
                        self.shred(step.node, self.job.files_read("start"))
                except OperationFailed as exc:
                    raise OperationFailed(self.rollback(step.node, str(exc))) from None

    # -- verify ------------------------------------------------------------------
    def verify(self) -> dict:
        """The end state, checked: returns who is active, for the report."""
        states = {n.name: (self.inspect(n.name), self.serving(n)) for n in self.service.nodes}
        active = [name for name, (_, serving) in states.items() if serving]
        if len(active) != 1:
            raise OperationFailed(f"{self.service.name}: after deploy {len(active)} nodes serve, expected one")
        keep_after = set(self.job.files_read("lease"))
        for name, (container, serving) in states.items():
            if container is None or not container.running:
                raise OperationFailed(f"{self.service.name} {name}: container not running after deploy")
            allowed = set() if serving else keep_after
            if self.service.secret_files == "shred":
                left = self.x(name, cmd.list_files(self.service.name)).stdout.split("\n")
                extra = {line.split()[0] for line in left if line.strip()} - allowed
                if extra:
                    self.shred(name, sorted(extra))  # what an interrupted run left behind
            exposed = "\n".join((*container.env, *container.args))  # what `docker inspect` shows anyone
            if self.job.profile != "v1" and self.job.redact.leaks(exposed):
                raise Unsafe(f"{self.service.name} {name}: a secret value is in the container's environment or command")
        if self.service.load_balancer:
            self.await_service()
        return {"active": active[0]}

    # -- the whole ---------------------------------------------------------------
    def run(self, dry_run: bool) -> dict:
        states, desired = self.observe()
        plan = plan_service(self.service, states, desired)
        steps = [s.describe() for s in plan.steps]
        self.say("", f"plan: {plan.reason}" + "".join(f"; {step}" for step in steps), steps=steps)
        if dry_run:
            return {"service": self.service.name, "changed": plan.changes, "planned": steps}
        self.execute(plan)
        result = self.verify()
        self.drop_previous()
        self.say(result["active"], "active" + ("" if plan.changes else "; nothing changed"))
        return {"service": self.service.name, "changed": plan.changes, **result, **self.ran()}

    def drop_previous(self) -> None:
        """Remove the previous containers, kept until the service succeeded: any failure before could roll back."""
        for node in self.conns:
            self.x(node, cmd.sh(cmd.remove(self.runtime, cmd.previous_name(self.service.name))), check=False)

    def ran(self) -> dict:
        """What now runs, for the audit log (``fab rollback`` reads it back): no secret in it."""
        return {"image": self.service.image, "digest": self.digest, "config": self.job.rendered.config_hash,
                "variables": dict(self.service.variables)}  # fmt: skip


def per_service(report: Reporter, service: str, work: Callable[[], dict]) -> dict:
    """``work()``'s result for one service or, when it fails, ``{"service", "error"}`` with the failure reported:
    one service failing never stops the others (errors.raise_failures makes their errors the run's)."""
    try:
        return work()
    except NodeopsError as exc:
        report(service, "", f"FAILED: {exc}")
        return {"service": service, "error": exc}


def deploy(fleet: Fleet, jobs: Sequence[Job], report: Reporter, dry_run: bool = False) -> list[dict]:
    """Deploy every job's service, in parallel, each pair on its own. A service that failed has
    ``error`` (its NodeopsError) in its result; errors.raise_failures turns those into the run's."""

    def one(job: Job) -> dict:
        return per_service(report, job.service.name, lambda: ServiceDeploy(job, fleet, report).run(dry_run))

    with ThreadPoolExecutor(max_workers=min(8, len(jobs) or 1)) as pool:
        return list(pool.map(one, jobs))
