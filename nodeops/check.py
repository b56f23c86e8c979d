"""fab check: a monitoring probe for cron or a CI schedule. It changes nothing and takes no lock.

What runs where is observed as ``fab status`` observes it (nodeops.status, nodeops.promote.observe);
on top of that, per service:
  active      exactly one node is the active (lease: answers the role's health path; keys: holds the hot keys),
              it answers 200, and the load balancer answers 200 from it (the lease client id the role reads in the
              reply, when it shows one; not under keys, where every node answers 200), in the model's words;
  lease       the lease is held, by the node that serves;
  secret-age  the age of each secret's current value against the rotation policy, by its backend's date
              (nodeops.secrets.secret_ages; aws-kms and env secrets have none: "unknown", naming the backend);
  rotation    only when a run left a rotation under way (nodeops.status.rotation_status: a pending marker on its
              secret, read without its value): fails, naming it and the command that completes it;
  standby     (per node other than the active) its container runs and does not serve: it waits;
  serving     in place of active, lease and standby under activation all (every node serves): every node answers
              200, and the load balancer answers 200;
  (kinds)     a role with node kinds: each kind group judged apart under its model, its check named
              ``<check>:<kind>`` (serving:relay, active:producer); only a kind with an active has standbys;
and per node:
  disk        use of /, /run (the secret files' tmpfs) and the container engine's storage;
  memory      MemTotal - MemAvailable, of MemTotal;
  load        the 5-minute load average per CPU;
  logs        error-level lines in the container's log of the last minutes.
and the role's own findings from its nodes' health replies (its ``check_facts`` hook, nodeops.facts.role_facts),
and for each rotation the role issues whose issuer has ``standing``, ``issued:<rotation>``: the value in force as
the store holds it against the chain (nodeops.facts.issued).

Each check passes, warns (within WARN_AT of its limit, or not failing but needing a look), is
"unknown" (nothing to measure), or fails; only a failure fails the run. Limits come from the
inventory (``check:``, nodeops.inventory.CheckPolicy). Every decision is a pure function of what
was fetched; the results also render as a Prometheus textfile for node_exporter.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nodeops import program
from nodeops.activation import Model, as_model, model_of
from nodeops.check_serving import Verdict, judge_service
from nodeops.edges import http
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput, NodeopsError
from nodeops.facts.holders import keep_line
from nodeops.facts.issued import standing, standing_findings
from nodeops.facts.logs import error_candidates, error_lines
from nodeops.facts.observe import Observer
from nodeops.facts.resources import host_resources, parse_resources
from nodeops.facts.role_facts import fact_findings, node_facts
from nodeops.facts.view import NodeView
from nodeops.inventory import Inventory
from nodeops.job import Job
from nodeops.operation import locks
from nodeops.plan import secret_changes
from nodeops.role_hooks import RoleHookFailed
from nodeops.secrets import SecretAge, secret_ages
from nodeops.status import lease_status, rotation_line, rotation_status
from nodeops.verify import Check

WARN_AT = 0.9  # of a limit: warn above this much of it
SHOWN = 160  # characters of a log line shown (after redaction)


@dataclass(frozen=True)
class Finding(Check):
    """A check (``ok`` is False only when it failed) with its result: pass, warn, unknown or fail."""

    result: str = "pass"


def finding(service: str, node: str, name: str, verdict: Verdict) -> Finding:
    return Finding(service, node, name, verdict[0] != "fail", verdict[1], verdict[0])


@dataclass(frozen=True)
class Metric:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


# -- pure: what passes ----------------------------------------------------------------------------
def level(value: float, limit: float) -> str:
    return "fail" if value > limit else "warn" if value > limit * WARN_AT else "pass"


def check_lease(lease: Mapping | None, active: str | None, active_id: str | None) -> Verdict:
    """``lease``: nodeops.status.lease_status; ``active``: the one node that answers, healthy or not (None: not
    exactly one)."""
    if lease is None:
        return "unknown", "the role keeps no lease"
    if "error" in lease:
        return "fail", f"unreadable: {lease['error']}"
    if not lease["held"]:
        return "fail", f"not held: {lease['describe']}"
    if active is None:
        return "fail", f"{lease['describe']}, but not exactly one node serves"
    if active_id is None:
        return "pass", f"{lease['describe']}; {active} serves (its health reply does not name its lease id)"
    if lease["holder"] != active_id:
        return "fail", f"{lease['describe']}, but the active {active} is {active_id[:8]}"
    return "pass", f"{lease['describe']}: the active {active}"


def check_standby(s: NodeView, activation: str | Model = "lease", in_use: bool | None = None) -> Verdict:
    """A node other than the active, under the role's ``activation`` (nodeops.activation.Model.standby_verdict; a
    role with kinds: its model, the node under its kind's): its container runs and is no active (lease: answers
    nothing, it waits for the lease; keys: runs without the hot keys, answering like any node). ``in_use``: what the
    role's ``keys_in_use`` hook says of its health reply (None: nothing); True fails a standby that passes by its
    label: it forges all the same (started by hand with keys), beside the holder."""
    verdict = as_model(activation).standby_verdict(s)
    if verdict[0] == "pass" and in_use:
        return "fail", "no hot label, but its health reply says it uses hot keys (the role's keys_in_use): two forging"
    return verdict


def standby_verdict(job: Job, s: NodeView, body: bytes | None) -> Verdict:
    """check_standby of ``s`` under ``job``'s role, its health reply ``body`` (None: none) asked of the role's
    ``keys_in_use`` hook; a hook that raises is this check's failure, naming it."""
    try:
        in_use = job.role.hooks.keys_in_use(body) if body is not None else None
    except RoleHookFailed as exc:
        return "fail", f"not checked: {exc}"
    return check_standby(s, model_of(job.role), in_use)


def check_drift(seen: Mapping[str, NodeView], config: str, versions: Mapping[str, str | None],
                own: Mapping[str, str] | None = None) -> Verdict:  # fmt: skip
    """Each running container against the inventory's configuration hash (``config``: image, variables, templates
    and secret version ids, nodeops.render; ``own``: {node: its own}, for a role that renders per node,
    Job.config_hashes): a change not deployed yet is a warning, naming each secret whose version moved in its
    backend (plan.secret_changes), since nodes read a secret only when they start."""
    own = own or {}
    behind = [name for name, s in seen.items() if s.container and s.container.running
              and s.container.label("config") != own.get(name, config)]  # fmt: skip
    if not behind:
        return "pass", "every running node is on the inventory's configuration"
    moved = secret_changes([seen[name] for name in behind], versions)
    why = "; ".join(moved) if moved else "the image, variables or templates differ"
    return (
        "warn",
        f"{', '.join(behind)} not on the inventory's configuration ({why}); {program()} deploy --dry-run shows it",
    )


def check_secret_ages(ages: Mapping[str, SecretAge], max_days: int) -> Verdict:
    """``ages``: nodeops.secrets.secret_ages; the undated ones (their backend keeps no date) named with their kind."""
    known = {name: age.seconds for name, age in ages.items() if age.seconds is not None}
    undated: dict[str, list[str]] = {}
    for name, age in sorted(ages.items()):
        if age.seconds is None:
            undated.setdefault(age.kind, []).append(name)
    unknown = "; ".join(f"age unknown ({kind} backend keeps no date): {', '.join(names)}"
                        for kind, names in sorted(undated.items()))  # fmt: skip
    if not known:
        return "unknown", unknown or "the service has no secrets"
    name, oldest = max(known.items(), key=lambda item: item[1])
    status = level(oldest, max_days * 86400)
    over = ", over the rotation limit" if status == "fail" else ""
    tail = f"; {unknown}" if unknown else ""
    return status, f"oldest {name}: {oldest / 86400:.1f} days{over} (limit {max_days}){tail}"


def check_rotation(rotation: dict | None, lock: dict | None = None, release: str = "") -> Verdict | None:
    """``rotation``: nodeops.status.rotation_status's; a failure naming the rotations a run left under way and the
    command that completes them, or saying the backend could not be read; None when none is under way. ``lock``:
    the service's lock record when a run holds it (LockInfo.record, as status shows it), which that command meets
    (exit 3): a stale one is said with ``release``, the command that removes it; a live one as a run to wait for
    (review rev16c F9)."""
    if rotation is None:
        return None
    line = rotation_line(rotation)
    if lock and "finish" in rotation:
        if lock["state"] == "stale":
            line += f", once the lock the dead run left is released (it refuses, exit 3, until then): first {release}"
        else:
            line += (f", once the run holding the lock now ends (alive, bastion pid {lock['bastion_pid']}: "
                     f"`{lock['holder'].get('command') or '?'}`)")  # fmt: skip
    return "fail", line


def check_disk(disks: Sequence[tuple[str, str, str, float]], max_percent: int) -> Verdict:
    """``disks``: Resources.disks."""
    if not disks:
        return "fail", "no disk usage read (df)"
    worst = max(disks, key=lambda d: d[3])
    status = level(worst[3], max_percent / 100)
    shown = ", ".join(f"{what} {ratio:.0%}" for what, _, _, ratio in disks)
    if status == "fail":
        return status, f"{worst[0]} {worst[3]:.0%} used, over {max_percent}% ({shown})"
    return status, f"used: {shown} (limit {max_percent}%)"


def check_memory(used: float | None, max_percent: int) -> Verdict:
    if used is None:
        return "fail", "no memory figures read (/proc/meminfo)"
    return level(used, max_percent / 100), f"{used:.0%} used (limit {max_percent}%)"


def check_load(load: tuple[float, int] | None, max_per_cpu: float) -> Verdict:
    if load is None:
        return "fail", "no load read (/proc/loadavg, nproc)"
    per_cpu = load[0] / load[1]
    return level(per_cpu, max_per_cpu), f"5-minute load {load[0]:.2f} on {load[1]} CPUs: {per_cpu:.2f} per CPU " \
                                         f"(limit {max_per_cpu:g})"  # fmt: skip


def check_logs(errors: Sequence[str], limit: int, minutes: int, redact: Callable[[str], str]) -> Verdict:
    """``errors``: the error-level lines of the last ``minutes``; the last one is shown redacted, then cut."""
    if not errors:
        return "pass", f"no error-level lines in the last {minutes} min"
    status = "fail" if len(errors) > limit else "warn"
    last = " ".join(redact(errors[-1]).split())
    last = last if len(last) <= SHOWN else last[: SHOWN - 3] + "..."
    return status, f"{len(errors)} error-level lines in the last {minutes} min (limit {limit}); last: {last}"


# -- pure: the Prometheus textfile -----------------------------------------------------------------
METRICS = {
    "nodeops_check_ok": "1 when the check passed, warned or had nothing to measure; 0 when it failed.",
    "nodeops_node_disk_used_ratio": "Used share of the filesystem holding path (/, /run, the engine's storage).",
    "nodeops_node_memory_used_ratio": "1 - MemAvailable / MemTotal.",
    "nodeops_node_load_per_cpu": "5-minute load average per CPU.",
    "nodeops_node_log_error_lines": "Error-level lines in the container's log over the check window.",
    "nodeops_secret_age_seconds": "Age of the secret's current value by its backend's date (none for aws-kms, env).",
    "nodeops_check_timestamp_seconds": "When fab check last ran to the end (Unix time).",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_textfile(metrics: Sequence[Metric]) -> str:
    """The Prometheus text format (0.0.4): each metric's HELP and TYPE (gauge) once, then its samples."""
    lines = []
    for name, help_text in METRICS.items():
        samples = [m for m in metrics if m.name == name]
        if samples:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for m in samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in m.labels)
            value = repr(float(m.value))  # every digit: a Unix time survives
            lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return "\n".join(lines) + "\n"


def textfile_target(path: str) -> Path:
    """Where --textfile writes, checked before anything runs: a *.prom file in an existing directory."""
    target = Path(path).expanduser()
    if target.suffix != ".prom":
        raise InvalidInput(f"--textfile {path}: name it *.prom (node_exporter's textfile collector reads only those)")
    if not target.parent.is_dir():
        raise InvalidInput(f"--textfile {path}: directory {target.parent} does not exist")
    if target.is_dir():
        raise InvalidInput(f"--textfile {path}: is a directory")
    return target


def write_textfile(target: Path, text: str) -> None:
    """Atomically: a temporary file in the same directory (a dot name the collector ignores), then a rename."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # the collector often runs as another user
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


# -- fetching: the part that touches hosts --------------------------------------------------------
@dataclass(frozen=True)
class Result:
    findings: list[Finding]
    metrics: list[Metric]


def probe_service(fleet: Fleet, inventory: Inventory, job: Job, lock: dict | None = None) -> Result:
    """``job``'s service's findings and metrics; ``lock``: its lock's record when a run holds it (check_rotation)."""
    service, role, policy = job.service, job.role, job.service.check
    observer = Observer(fleet, service, role)
    seen = observer.views()
    lb = http.request(service.load_balancer, timeout=http.ANSWER_TIMEOUT) if service.load_balancer else None
    now = datetime.datetime.now(datetime.UTC)
    try:
        ages = secret_ages(inventory, service, now)
        secrets = check_secret_ages(ages, policy.secret_max_age_days)
    except NodeopsError as exc:
        ages, secrets = {}, ("fail", f"secret dates unreadable: {exc}")
    hooks = role.hooks

    def lease(active: str | None) -> Verdict:
        body = observer.answers.get(active) if active else None
        return check_lease(lease_status(fleet, job), active, hooks.lease_client(body) if body is not None else None)

    # lease: who answers is active; keys: who holds the hot keys (both answer); kinds: each kind under its own
    served, warnings, standbys = judge_service(model_of(role), service, seen, observer.answers, lb, lease,
                                               hooks.lease_client, role.health)  # its replies: no 2nd GET  # fmt: skip
    findings = [finding(service.name, "", *v) for v in served]
    holders = {name for name, s in seen.items() if s.hot}  # the holder is compared with the holder's hash
    drift = check_drift(seen, job.rendered.config_hash, job.rendered.secret_versions, job.config_hashes(holders))
    rotation, fence = rotation_status(inventory, job) if ages else (None, None)  # no secret: no rotation
    release = f"{program()} lock.release --env {inventory.environment} --service {service.name} --force"
    under_way = check_rotation(rotation, lock, release)  # the lock its command would meet
    keep = keep_line(job, seen.values(), fence)  # which to keep
    findings += [
        finding(service.name, "", "secret-age", secrets),
        *([finding(service.name, "", "rotation", under_way)] if under_way else []),
        *([finding(service.name, "", "holders", ("fail", keep))] if keep else []),
        finding(service.name, "", "drift", drift),
        *(finding(service.name, "", *v) for v in warnings),
    ]  # the role's facts of the replies the observer got (its node_facts, check_facts): no second request
    facts = fact_findings(job, *node_facts(job, observer.answers), inventory.environment, fence)
    findings += [finding(service.name, *f) for f in facts]
    findings += [finding(service.name, *f) for f in standing_findings(standing(job, seen, observer.run))]
    metrics = [Metric("nodeops_secret_age_seconds", (("env", inventory.environment), ("service", service.name),
                                                      ("secret", name)), age.seconds)
               for name, age in ages.items() if age.seconds is not None]  # fmt: skip
    for name, s in seen.items():
        node_findings, node_metrics = probe_node(observer, job, s, standby=name in standbys)
        findings += [finding(service.name, name, check, verdict) for check, verdict in node_findings]
        metrics += [Metric(m, (("env", inventory.environment), ("service", service.name), ("node", name), *labels), v)
                    for m, labels, v in node_metrics]  # fmt: skip
    metrics += [Metric("nodeops_check_ok", (("env", inventory.environment), ("service", f.service), ("node", f.node),
                                            ("check", f.check)), float(f.ok))
                for f in findings]  # fmt: skip
    return Result(findings, metrics)


NodeMetric = tuple[str, tuple[tuple[str, str], ...], float]  # name, labels beyond env/service/node, value


def probe_node(observer: Observer, job: Job, s: NodeView,
               standby: bool) -> tuple[list[tuple[str, Verdict]], list[NodeMetric]]:  # fmt: skip
    """A node's checks (name, verdict) and its metrics (name, extra labels, value), by ``job``'s check policy."""
    policy = job.service.check
    verdicts: list[tuple[str, Verdict]] = [("standby", standby_verdict(job, s, observer.answers.get(s.node.name)))
                                           ] if standby else []  # fmt: skip
    if not s.reachable:
        gone = ("fail", "unreachable through the bastion")
        return verdicts + [(name, gone) for name in ("disk", "memory", "load", "logs")], []
    node, runtime = s.node.name, job.service.runtime
    try:
        res = parse_resources(observer.run(node, host_resources(runtime)).stdout)
        out = None if s.container is None else \
            observer.run(node, error_candidates(runtime, observer.name, policy.log_minutes)).stdout  # fmt: skip
    except NodeopsError as exc:  # the connection died midway, or a command timed out
        lost = ("fail", f"not checked: {exc}")
        return verdicts + [(name, lost) for name in ("disk", "memory", "load", "logs")], []
    try:  # only the check that uses the role's hook fails when it raises
        logs = None if out is None else error_lines(out, job.role.hooks.log_level)
    except RoleHookFailed as exc:
        logs, log_verdict = None, ("fail", f"not checked: {exc}")
    else:
        log_verdict = ("unknown", "no container") if logs is None else \
            check_logs(logs, policy.log_error_lines, policy.log_minutes, job.redact)  # fmt: skip
    verdicts += [
        ("disk", check_disk(res.disks, policy.disk_max_percent)),
        ("memory", check_memory(res.memory, policy.memory_max_percent)),
        ("load", check_load(res.load, policy.load_max_per_cpu)),
        ("logs", log_verdict),
    ]
    metrics: list[NodeMetric] = [("nodeops_node_disk_used_ratio", (("path", path), ("mount", point)), ratio)
               for _, path, point, ratio in res.disks]  # fmt: skip
    if res.memory is not None:
        metrics.append(("nodeops_node_memory_used_ratio", (), res.memory))
    if res.load is not None:
        metrics.append(("nodeops_node_load_per_cpu", (), res.load[0] / res.load[1]))
    if logs is not None:
        metrics.append(("nodeops_node_log_error_lines", (), float(len(logs))))
    return verdicts, metrics


def _locks(fleet: Fleet, services: Sequence[str]) -> dict[str, dict]:
    """Each held lock's record by service, read on the bastions as status reads them (nodeops.operation.locks);
    none when a bastion cannot say (the other checks name an unreachable bastion)."""
    try:
        return {lock.service: lock.record() for lock in locks(fleet, services)}
    except NodeopsError:
        return {}


def check(fleet: Fleet, inventory: Inventory, jobs: Sequence[Job]) -> Result:
    """Every check of every job's service, services in parallel; nothing is changed, no lock taken (the locks are
    read: a rotation's line names one its command would meet)."""
    held = _locks(fleet, [job.service.name for job in jobs])
    with ThreadPoolExecutor(max_workers=min(8, len(jobs) or 1)) as pool:
        results = list(pool.map(lambda job: probe_service(fleet, inventory, job, held.get(job.service.name)), jobs))
    return Result([f for r in results for f in r.findings], [m for r in results for m in r.metrics])
