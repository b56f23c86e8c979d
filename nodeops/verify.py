"""fab verify: checks of every node after a deploy, with testinfra's modules, through the bastion.

testinfra's own ssh and paramiko backends open connections of their own (an
unknown host key accepted, ~/.ssh/config read). Here its modules (host.file,
host.mount_point, host.run) run over the run's pinned, host-key-verified
connections instead: ``PinnedBackend`` sends each command through
nodeops.edges.ssh.execute. Only ``fetch`` touches a host; every pass or fail is
decided from what it fetched by a pure ``check_*`` function.

Per service and node:
  container-user  the container is configured to run as the role's user, and its main
                  process on the node host runs as that uid;
  port            exactly one node of the service answers the role's health path through
                  the bastion (the active); a standby answers nothing on the port; under activation
                  all, every node answers it with 200 (serving);
  files-dir       the node's files directory holds only what the node still needs, 0400 for
                  the role's user: nothing on the active; on a standby the files it reads at
                  lease time (with ``secret_files: keep``: the rendered files);
  files-on-disk   no file named like one of the role's secret files under the login user's
                  home, /root, /tmp or /var/tmp (a few levels down);
  tmpfs           the files directory is on tmpfs (RAM);
  host-keys       every key pinned for the node is one of its /etc/ssh/ssh_host_*_key.pub.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import testinfra.host
from testinfra.backend.base import BaseBackend
from testinfra.backend.base import CommandResult as TestinfraResult

from nodeops.activation import model_of
from nodeops.commands import node as cmd
from nodeops.edges.ssh import Fleet, Link, execute
from nodeops.errors import HostKeyRejected, NodeopsError, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.files import list_files
from nodeops.facts.health import failing_checks
from nodeops.facts.observe import Observer
from nodeops.inventory import Node
from nodeops.job import Job
from nodeops.roles import Role

CHECKS = ("container-user", "port", "files-dir", "files-on-disk", "tmpfs", "host-keys")
KEY_DIR, KEY_FILES = "/etc/ssh", "ssh_host_*_key.pub"

Verdict = tuple[bool, str]  # passed, and why, in one line
Answer = tuple[int, bytes] | None  # a node's reply to its health path (status, body); None: nothing answered


@dataclass(frozen=True)
class Check:
    service: str
    node: str
    check: str
    ok: bool
    reason: str


# -- pure: what passes ---------------------------------------------------------------------------
def process_uids(status: str) -> tuple[int, ...]:
    """Real, effective, saved and filesystem uid from /proc/PID/status; () when it has no Uid line."""
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return tuple(int(u) for u in line.split()[1:])
    return ()


def check_user(container: Container | None, status: str | None, uid: int) -> Verdict:
    """``status``: /proc/PID/status of the container's main process on the node host (None: not found)."""
    if container is None:
        return False, "no container"
    if not container.running:
        return False, f"container {container.status}, not running"
    if container.user.split(":", 1)[0] != str(uid):
        return False, f"configured user {container.user or 'none (the image default)'}, expected {uid}"
    uids = process_uids(status or "")
    if not uids:
        return False, f"main process {container.pid} not found on the node host"
    if set(uids) != {uid}:
        shown = "/".join(map(str, uids))
        return False, f"main process {container.pid} runs as uid {shown} (real/effective/saved/fs), expected {uid}"
    return True, f"configured {container.user}, main process {container.pid} runs as uid {uid}"


def check_port(answers: Mapping[str, Answer], node: str, port: int, path: str,
               named: Callable[[bytes], Iterable[str]]) -> Verdict:  # fmt: skip
    """``answers``: every reachable node of the service, its reply to GET ``path`` on ``port``; ``named``: the
    role's hook naming a reply's failing checks (nodeops.facts.health.failing_checks). A node that answers at
    all, 200 or not, is the active (it holds the lease)."""
    serving = sorted(name for name, reply in answers.items() if reply is not None)
    reply = answers[node]
    if len(serving) > 1:
        return False, f"{len(serving)} nodes answer {path} ({', '.join(serving)}): expected exactly one"
    if reply is not None and reply[0] == 200:
        return True, f"the active: answers 200 on :{port}{path}"
    if reply is not None:
        failing = ", ".join(failing_checks(reply, named))
        return False, f"the active, unhealthy: answers HTTP {reply[0]} on :{port}{path} (failing: {failing})"
    if not serving:
        return False, f"no node of the service answers {path} on :{port}"
    return True, f"a standby: nothing answers on :{port} ({serving[0]} is the active)"


def check_serving(reply: Answer, port: int, path: str, named: Callable[[bytes], Iterable[str]],
                  activation: str = "all") -> Verdict:  # fmt: skip
    """Activation all or keys (every node serves; under keys the holder and the standby alike): ``reply``, this
    node's to GET ``path`` on ``port`` (None: nothing answered), is a 200; ``named`` as check_port's."""
    if reply is not None and reply[0] == 200:
        return True, f"serving: answers 200 on :{port}{path}"
    if reply is None:
        return False, f"not serving: nothing answers {path} on :{port} (activation {activation}: every node serves)"
    failing = ", ".join(failing_checks(reply, named))
    return False, f"not serving: answers HTTP {reply[0]} on :{port}{path} (failing: {failing})"


def allowed_files(secret_files: str, rendered: Sequence[str], lease: Sequence[str], serving: bool) -> frozenset[str]:
    """What a deployed node's files directory may hold: with ``keep``, the rendered files; with
    ``shred``, nothing on the active, and on a standby the files read at lease time (not yet read)."""
    if secret_files == "keep":
        return frozenset(rendered)
    return frozenset() if serving else frozenset(lease)


def check_files(listing: str, allowed: frozenset[str], uid: int) -> Verdict:
    """``listing``: nodeops.facts.files.list_files output, one "name mode uid" line per file."""
    found = {}
    for line in listing.splitlines():
        if line.strip():
            name, mode, owner = line.rsplit(" ", 2)
            found[name] = (mode, owner)
    extra = sorted(set(found) - allowed)
    if extra:
        return False, f"holds {', '.join(extra)}: not needed here (allowed: {', '.join(sorted(allowed)) or 'nothing'})"
    loose = [f"{name} ({mode}, uid {owner})" for name, (mode, owner) in sorted(found.items())
             if (mode, owner) != ("400", str(uid))]  # fmt: skip
    if loose:
        return False, f"{', '.join(loose)}: expected 0400 owned by uid {uid}"
    return True, f"holds {', '.join(sorted(found))} (0400, uid {uid})" if found else "holds nothing"


def secret_names(role: Role) -> tuple[str, ...]:
    """The names of the files a role marks secret, in any of its profiles."""
    return tuple(sorted({f.name for p in role.profiles.values() for f in p.files.values() if f.secret}))


def check_strays(exit_code: int, output: str, names: Sequence[str]) -> Verdict:
    """``exit_code`` and ``output``: of cmd.find_named(names)."""
    if exit_code not in (0, 1):
        return False, f"the search did not run (exit {exit_code})"
    paths = sorted({line for line in output.splitlines() if line.strip()})
    if paths:
        return False, f"found {', '.join(paths)}"
    places = ", ".join(p.replace('"$HOME"', "~") for p in cmd.STRAY_PLACES)
    return True, f"no {', '.join(names)} under {places}"


def check_tmpfs(path: str, mounts: Sequence[tuple[str, str]]) -> Verdict:
    """``mounts``: (mount point, filesystem type) in mount order, as /proc/mounts lists them."""
    held = None
    for point, fstype in mounts:
        inside = point == "/" or path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (held is None or len(point) >= len(held[0])):  # the deepest, then the latest, wins
            held = (point, fstype)
    if held is None:
        return False, f"no mount holds {path}"
    point, fstype = held
    if fstype != "tmpfs":
        return False, f"{path} is on {fstype} (mounted at {point}), not RAM: secret files would reach the disk"
    return True, f"{path} is on tmpfs (mounted at {point})"


def fingerprint(blob_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except binascii.Error:
        return "(not a key)"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_host_keys(files: Sequence[str], pinned: Sequence[tuple[str, str]]) -> Verdict:
    """``files``: the contents of the node's public host key files; ``pinned``: (type, base64) pinned for it."""
    on_node = {(words[0], words[1]) for words in map(str.split, files) if len(words) >= 2}
    if not on_node:
        return False, f"no {KEY_DIR}/{KEY_FILES} on the node"
    if not pinned:
        return False, "no key is pinned for the node"
    missing = [key for key in pinned if key not in on_node]
    if missing:
        theirs = ", ".join(f"{t} {fingerprint(b)}" for t, b in sorted(on_node))
        return False, f"pinned {', '.join(f'{t} {fingerprint(b)}' for t, b in missing)} is not the node's ({theirs})"
    return True, ", ".join(f"{t} {fingerprint(b)}" for t, b in pinned) + f" in {KEY_DIR}, as pinned"


# -- fetching: the only part that touches hosts ---------------------------------------------------
class PinnedBackend(BaseBackend):
    """testinfra's view of one node: every command runs over the run's pinned connection."""

    NAME = "nodeops"

    def __init__(self, conn: Link, timeout: float) -> None:
        super().__init__(conn.label)
        self.conn = conn
        self.timeout = timeout

    def run(self, command: str, *args: str, **kwargs) -> TestinfraResult:  # noqa: ARG002 (testinfra's encoding=)
        command = self.get_command(command, *args)
        res = execute(self.conn, command, timeout=self.timeout)
        return self.result(res.exit_code, self.encode(command), res.stdout, res.stderr)


@dataclass(frozen=True)
class Facts:
    """What one node showed."""

    container: Container | None
    process: str | None  # /proc/PID/status of the container's main process
    files: str  # nodeops.facts.files.list_files output
    strays: tuple[int, str]  # cmd.find_named: exit code, output
    mounts: tuple[tuple[str, str], ...]  # (mount point, filesystem type)
    keys: tuple[str, ...]  # the contents of its public host key files


def fetch(observer: Observer, conn: Link, node: Node) -> Facts:
    observer.adopt(node.name, conn)  # the fan-out's connection, for observer.container
    host = testinfra.host.Host(PinnedBackend(conn, observer.fleet.settings.command_timeout))
    container = observer.container(node.name)
    process = None
    if container is not None and container.pid:
        status = host.file(f"/proc/{container.pid}/status")
        process = status.content_string if status.exists else None
    strays = host.run(cmd.find_named(secret_names(observer.role)))
    key_dir = host.file(KEY_DIR)
    names = fnmatch.filter(key_dir.listdir(), KEY_FILES) if key_dir.is_directory else []
    keys = tuple(host.file(f"{KEY_DIR}/{n}").content_string for n in names)
    return Facts(
        container=container,
        process=process,
        files=host.check_output(list_files(observer.service.name)),
        strays=(strays.rc, strays.stdout),
        mounts=tuple((m.path, m.filesystem) for m in host.mount_point.get_mountpoints()),
        keys=keys,
    )


def evaluate(job: Job, node: Node, facts: Facts, answers: Mapping[str, Answer],
             pinned: Sequence[tuple[str, str]]) -> dict[str, Verdict]:  # fmt: skip
    role, service = job.role, job.service
    model = model_of(role).for_kind(node.kind)  # keys, all: every node serves (has read all its files); lease: the
    # one that answers; a role with kinds: the node's kind's model
    active = model.every_node_serves or answers[node.name] is not None  # holds the lease: it read its lease files
    allowed = allowed_files(service.secret_files, job.all_files, job.files_read("lease"), active)
    port = (
        check_port(answers, node.name, role.port, role.health, role.hooks.failing_checks)
        if model.silent_standby
        else check_serving(answers[node.name], role.port, role.health, role.hooks.failing_checks, model.name)
    )
    return {
        "container-user": check_user(facts.container, facts.process, role.user),
        "port": port,
        "files-dir": check_files(facts.files, allowed, role.user),
        "files-on-disk": check_strays(*facts.strays, secret_names(role)),
        "tmpfs": check_tmpfs(cmd.files_dir(service.name), facts.mounts),
        "host-keys": check_host_keys(facts.keys, pinned),
    }


def unchecked(error: NodeopsError, connected: bool) -> dict[str, Verdict]:
    """The checks of a node that could not be checked: its host key refused, unreachable, or failed midway."""
    if isinstance(error, HostKeyRejected):
        refused = dict.fromkeys(CHECKS, (False, "not checked: its host key was refused"))
        return {**refused, "host-keys": (False, str(error))}
    return dict.fromkeys(CHECKS, (False, f"{'not checked' if connected else 'unreachable'}: {error}"))


def failure_summary(checks: Sequence[Check]) -> str | None:
    """None when no check failed; else one line naming the failed checks by service and node
    (by service alone for a check of the whole service, whose node is "")."""
    by_node: dict[str, list[str]] = {}
    for c in checks:
        if not c.ok:
            by_node.setdefault(f"{c.service} {c.node}".strip(), []).append(c.check)
    if not by_node:
        return None
    failed = sum(map(len, by_node.values()))
    return f"{failed} of {len(checks)} checks failed: " + "; ".join(
        f"{where}: {', '.join(names)}" for where, names in by_node.items()
    )


@dataclass(frozen=True)
class Verification:
    checks: list[Check]
    refused: list[str]  # nodes whose host key was not the pinned one

    def error(self) -> NodeopsError | None:
        """None when every check passed; else the failed checks, by node (exit 4 if a host key was refused)."""
        message = failure_summary(self.checks)
        if message is None:
            return None
        if self.refused:
            return Unsafe(f"host key not the pinned one on {', '.join(self.refused)}; {message}")
        return OperationFailed(message)


def verify(fleet: Fleet, jobs: Sequence[Job]) -> Verification:
    """Every check on every node of the jobs' services, nodes in parallel. An unreachable node's
    checks fail ("unreachable"); one whose host key is not the pinned one is refused."""
    observers = {job.service.name: Observer(fleet, job.service, job.role) for job in jobs}
    nodes = [n for job in jobs for n in job.service.nodes]
    outcomes = fleet.map(nodes, lambda conn, node: fetch(observers[node.service], conn, node))
    checks, refused = [], []
    for job in jobs:
        role = job.role  # the port is reached through the bastion, whatever became of the node's SSH
        answers = {n.name: fleet.http_get(n.host, role.port, role.health, service=n.service)
                   for n in job.service.nodes}  # fmt: skip
        for o in (o for o in outcomes if o.node.service == job.service.name):
            if o.ok:
                pinned = [(k.keytype, k.blob_b64) for k in fleet.keys.pinned(o.node)]
                verdicts = evaluate(job, o.node, o.value, answers, pinned)
            else:
                verdicts = unchecked(o.error, connected=o.attempts > 0)  # attempts: set once connected
                if isinstance(o.error, HostKeyRejected):
                    refused.append(o.node.name)
            checks += [Check(job.service.name, o.node.name, name, *verdict) for name, verdict in verdicts.items()]
    return Verification(checks, refused)
