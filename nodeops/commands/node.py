"""Commands that run on a node host: its container engine, and its RAM-backed secret files.

Secret values never appear in any of these: file contents travel on the
command's stdin (see ``write_file``), never in an argument.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

LABEL_PREFIX = "io.nodeops."
FILES_ROOT = "/run/nodeops"  # RAM-backed on every supported host (tmpfs); checked before use


def files_dir(service: str) -> str:
    return f"{FILES_ROOT}/{service}"


def container_name(service: str) -> str:
    return f"nodeops-{service}"


def volume_name(service: str, volume: str) -> str:
    """The Docker volume of ``service``'s role's volume ``volume`` on each of its nodes: ``nodeops-pool.db``. The dot
    is in no service's nor volume's name, so two services on one host never share one. Pure."""
    return f"nodeops-{service}.{volume}"


def previous_name(service: str) -> str:
    """The container being replaced keeps this name until its successor is healthy (rollback)."""
    return f"nodeops-{service}-previous"


def sh(*argvs: Sequence[str], sep: str = " && ") -> str:
    """Join argv tuples into one shell line, every word quoted once, here."""
    return sep.join(shlex.join(argv) for argv in argvs)


# The command in the background; the foreground reads the session's stdin, which nothing ever writes: it ends
# (EOF) only when the session closes, and then the command is killed. Without this, closing an SSH session
# with no PTY signals nothing: a `docker logs --follow` outlives it until it next writes a line (sshd, 8.x).
_UNTIL_CLOSED = ('exec 3<&0; "$@" </dev/null & p=$!; '
                 '(cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null) >/dev/null 2>&1 & w=$!; '
                 'exec 3<&-; wait $p; s=$?; kill $w 2>/dev/null; exit $s')  # fmt: skip


def until_closed(argv: Sequence[str]) -> str:
    """The shell line running ``argv`` on a node that also ends it (SIGTERM) once the SSH session closes.

    Its output and exit status are the command's own while the session lasts. The session's stdin must stay
    open and unwritten while it runs (nodeops.edges.ssh.stream never writes to it); its end is the signal.
    """
    return sh(["sh", "-c", _UNTIL_CLOSED, "sh", *argv])


@dataclass(frozen=True)
class RunSpec:
    """Everything `docker run` needs for one node's container."""

    runtime: str  # docker | podman
    service: str
    image: str
    command: tuple[str, ...]
    user: int
    port: int
    mount: str  # where the container sees the files directory
    labels: Mapping[str, str]
    restart: str
    log_driver: str
    log_options: Mapping[str, str]
    stop_timeout: int
    init: bool = False  # --init: the engine's init process is PID 1 (the role's ``init``)
    env_file: str | None = None  # a file in the files directory (v1 profile)
    ports: tuple[int, ...] = ()  # published too, each on the same host port (the role's ``ports``)
    volumes: Mapping[str, str] = field(default_factory=dict)  # volume name -> container path, mounted read-write


def run(spec: RunSpec) -> tuple[str, ...]:
    argv = [
        spec.runtime, "run", "--detach", "--name", container_name(spec.service),
        "--user", f"{spec.user}:{spec.user}",
        "--publish", f"{spec.port}:{spec.port}",
        *(w for port in spec.ports for w in ("--publish", f"{port}:{port}")),
        "--restart", spec.restart,
        "--stop-timeout", str(spec.stop_timeout),
        *(["--init"] if spec.init else []),
        "--log-driver", spec.log_driver,
    ]  # fmt: skip
    for key, value in sorted(spec.log_options.items()):
        argv += ["--log-opt", f"{key}={value}"]
    for key, value in sorted(spec.labels.items()):
        argv += ["--label", f"{LABEL_PREFIX}{key}={value}"]
    argv += ["--volume", f"{files_dir(spec.service)}:{spec.mount}:ro"]
    for name, path in spec.volumes.items():  # created empty by the first run (the image's folder copied in), kept
        argv += ["--volume", f"{volume_name(spec.service, name)}:{path}"]  # by `rm --force` (never `--volumes`)
    if spec.env_file:
        argv += ["--env-file", f"{files_dir(spec.service)}/{spec.env_file}"]
    return (*argv, spec.image, *spec.command)


def image_tag(image: str) -> str:
    """The tag of an image reference: `reg:5000/repo:2.10.0@sha256:...` -> 2.10.0 (`latest` when none)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def pull(runtime: str, image: str) -> tuple[str, ...]:
    return (runtime, "pull", "--quiet", image)


def stop(runtime: str, name: str, timeout: int) -> tuple[str, ...]:
    return (runtime, "stop", "--time", str(timeout), name)


def start(runtime: str, name: str) -> tuple[str, ...]:
    return (runtime, "start", name)


def remove(runtime: str, name: str) -> tuple[str, ...]:
    return (runtime, "rm", "--force", name)


def rename(runtime: str, old: str, new: str) -> tuple[str, ...]:
    return (runtime, "rename", old, new)


def logs(runtime: str, name: str, tail: int = 200) -> tuple[str, ...]:
    return (runtime, "logs", "--tail", str(tail), name)


def prepare_dir(service: str, uid: int) -> str:
    """An empty files directory on the node's tmpfs, readable only by the container user.

    Whatever an interrupted run left there is shredded first."""
    d = files_dir(service)
    return (
        f"mkdir -p -m 0755 {FILES_ROOT} && "
        f"if [ -d {shlex.quote(d)} ]; then find {shlex.quote(d)} -type f -exec shred -u -- {{}} +; fi && "
        + sh(("rm", "-rf", "--", d), ("install", "-d", "-m", "0500", "-o", str(uid), "-g", str(uid), d))
    )


def write_file(service: str, name: str, uid: int) -> str:
    """Create the file 0400, owned by the container user, before its first byte; the content is stdin."""
    path = f"{files_dir(service)}/{name}"
    create = sh(("install", "-m", "0400", "-o", str(uid), "-g", str(uid), "/dev/null", path))
    return f"{create} && cat > {shlex.quote(path)}"


def shred(service: str, names: Sequence[str]) -> str:
    """Shred the named files if present (a file already gone is not an error)."""
    paths = [f"{files_dir(service)}/{n}" for n in names]
    return f'for f in {" ".join(shlex.quote(p) for p in paths)}; do if [ -e "$f" ]; then shred -u -- "$f"; fi; done'


STRAY_PLACES = ('"$HOME"', "/root", "/tmp", "/var/tmp")  # where an operator leaves a copy; $HOME: the login user's
STRAY_DEPTH = 3


def find_named(names: Sequence[str]) -> str:
    """Paths of files called one of ``names`` under STRAY_PLACES, at most STRAY_DEPTH down.

    Bounded and cheap: one find, no descent into other filesystems. Exit 0 or 1 (a place that
    does not exist, or one not readable) both mean it ran."""
    match = " -o ".join(f"-name {shlex.quote(n)}" for n in names) or "-false"
    places = " ".join(STRAY_PLACES)
    return f"find {places} -maxdepth {STRAY_DEPTH} -xdev -type f \\( {match} \\) -print 2>/dev/null"
