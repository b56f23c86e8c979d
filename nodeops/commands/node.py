"""Commands that run on a node host: its container engine, and its RAM-backed secret files.

Secret values never appear in any of these: file contents travel on the
command's stdin (see ``write_file``), never in an argument.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LABEL_PREFIX = "io.nodeops."
FILES_ROOT = "/run/nodeops"  # RAM-backed on every supported host (tmpfs); checked before use


def files_dir(service: str) -> str:
    return f"{FILES_ROOT}/{service}"


def container_name(service: str) -> str:
    return f"nodeops-{service}"


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
    env_file: str | None = None  # a file in the files directory (v1 profile)


def run(spec: RunSpec) -> tuple[str, ...]:
    argv = [
        spec.runtime, "run", "--detach", "--name", container_name(spec.service),
        "--user", f"{spec.user}:{spec.user}",
        "--publish", f"{spec.port}:{spec.port}",
        "--restart", spec.restart,
        "--stop-timeout", str(spec.stop_timeout),
        "--log-driver", spec.log_driver,
    ]  # fmt: skip
    for key, value in sorted(spec.log_options.items()):
        argv += ["--log-opt", f"{key}={value}"]
    for key, value in sorted(spec.labels.items()):
        argv += ["--label", f"{LABEL_PREFIX}{key}={value}"]
    argv += ["--volume", f"{files_dir(spec.service)}:{spec.mount}:ro"]
    if spec.env_file:
        argv += ["--env-file", f"{files_dir(spec.service)}/{spec.env_file}"]
    return (*argv, spec.image, *spec.command)


def image_tag(image: str) -> str:
    """The tag of an image reference: `reg:5000/repo:2.10.0@sha256:...` -> 2.10.0 (`latest` when none)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def parse_image_id(output: str, image: str) -> tuple[str, str | None]:
    """(image id, repository digest) from ``image_id``'s output; the digest is None for a local-only image."""
    image_id, _, digests = output.strip().partition(" ")
    repository = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    found = [d for d in json.loads(digests or "[]") if d.split("@", 1)[0] == repository]
    return image_id, (found[0].split("@", 1)[1] if found else None)


def pull(runtime: str, image: str) -> tuple[str, ...]:
    return (runtime, "pull", "--quiet", image)


def registry_of(image: str) -> str:
    """The registry host of an image reference, by the Docker CLI's rule: the first path component when it
    has a ``.`` or ``:`` or is ``localhost`` (``10.0.0.3:5000/repo:1`` -> ``10.0.0.3:5000``), else Docker Hub
    (``docker.io``)."""
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else "docker.io"


def registry_config(runtime: str) -> tuple[str, ...]:
    """The engine's registry settings (``RegistryConfig`` of `docker info`: which registries it reaches over
    plain HTTP or unverified TLS)."""
    return (runtime, "info", "--format", "{{json .RegistryConfig}}")


def insecure_registry(image: str, config: str) -> bool:
    """Whether the node's engine treats ``image``'s registry as insecure (plain HTTP allowed), from
    ``registry_config``'s output: its ``IndexConfigs[host].Secure`` is false, or its address is in one of
    ``InsecureRegistryCIDRs``. Output that is not that JSON: False (secure, as the CLI defaults)."""
    host = registry_of(image)
    try:
        doc = json.loads(config or "null") or {}
        index = (doc.get("IndexConfigs") or {}).get(host)
        if index is not None:
            return index.get("Secure") is False
        address = ipaddress.ip_address(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
        return any(address in ipaddress.ip_network(cidr) for cidr in doc.get("InsecureRegistryCIDRs") or ())
    except (ValueError, AttributeError, TypeError):  # not JSON, or a host name rather than an address
        return False


def manifest_inspect(runtime: str, image: str, insecure: bool) -> tuple[str, ...] | None:
    """Read ``image``'s manifest from its registry, pulling nothing (the docker CLI's own registry client,
    with the login user's credentials, as a pull); None for podman, whose `manifest inspect` prints no
    descriptor. ``insecure``: the engine itself reaches that registry over plain HTTP (insecure_registry)."""
    if runtime != "docker":
        return None
    return (runtime, "manifest", "inspect", "--verbose", *(("--insecure",) if insecure else ()), image)


def parse_manifest_digest(output: str) -> str | None:
    """The registry digest (``sha256:...``) from `docker manifest inspect --verbose`: its ``Descriptor.digest``
    for an image's manifest; None for a multi-platform list (it prints each platform's manifest, not the
    list's own digest, which is what a pull records) or output that is not that JSON."""
    try:
        doc = json.loads(output)
        digest = doc["Descriptor"]["digest"] if isinstance(doc, dict) else None
    except (ValueError, KeyError, TypeError):
        return None
    return digest if isinstance(digest, str) and digest.startswith("sha256:") else None


NO_SUCH_TAG = ("manifest unknown", "no such manifest", "manifest_unknown")  # docker CLI / registry API wording


def says_no_such_image(output: str) -> bool:
    """Whether a failed `docker pull` / `docker manifest inspect` output is the registry's definite answer that
    the image's tag (or digest) does not exist ("manifest unknown", "no such manifest"), as opposed to a
    registry that could not be asked (down, refused, unauthorised): only that answer is the inventory's fault."""
    text = output.lower()
    return any(words in text for words in NO_SUCH_TAG)


def image_id(runtime: str, image: str) -> tuple[str, ...]:
    return (runtime, "image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", image)


def inspect(runtime: str, name: str) -> tuple[str, ...]:
    """JSON of the container, or exit 1 with 'No such' when there is none."""
    return (runtime, "container", "inspect", name)


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


ENGINE_ROOT = {"docker": "{{.DockerRootDir}}", "podman": "{{.Store.GraphRoot}}"}  # `info --format` of each engine
SECTION = "--"  # a line between the parts of host_resources' output


def host_resources(runtime: str) -> str:
    """One cheap command for a host's resources: "engine PATH" (the engine's storage; empty when it did not
    answer), `df -P -k` of /, /run and that path, /proc/meminfo, /proc/loadavg and nproc, parts split by SECTION."""
    root = sh((runtime, "info", "--format", ENGINE_ROOT[runtime]))
    return (f'root=$({root} 2>/dev/null); echo "engine $root"; df -P -k / /run ${{root:+"$root"}}; '
            f"echo {SECTION}; cat /proc/meminfo; echo {SECTION}; cat /proc/loadavg; nproc")  # fmt: skip


def error_candidates(runtime: str, name: str, minutes: int) -> str:
    """The container's log lines of the last ``minutes`` that mention an error-like level word: a superset
    of its error-level lines, cut on the node so that a chatty log does not travel (nodeops.check classifies)."""
    since = sh((runtime, "logs", "--since", f"{minutes}m", name))
    return f"{since} 2>&1 | grep -aiE 'err|crit|panic|fatal'"


def filesystem_type(path: str) -> tuple[str, ...]:
    return ("stat", "--file-system", "--format", "%T", path)


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


def list_files(service: str) -> str:
    d = shlex.quote(files_dir(service))
    return f"if [ -d {d} ]; then find {d} -type f -printf '%f %m %U\\n'; fi"


STRAY_PLACES = ('"$HOME"', "/root", "/tmp", "/var/tmp")  # where an operator leaves a copy; $HOME: the login user's
STRAY_DEPTH = 3


def find_named(names: Sequence[str]) -> str:
    """Paths of files called one of ``names`` under STRAY_PLACES, at most STRAY_DEPTH down.

    Bounded and cheap: one find, no descent into other filesystems. Exit 0 or 1 (a place that
    does not exist, or one not readable) both mean it ran."""
    match = " -o ".join(f"-name {shlex.quote(n)}" for n in names) or "-false"
    places = " ".join(STRAY_PLACES)
    return f"find {places} -maxdepth {STRAY_DEPTH} -xdev -type f \\( {match} \\) -print 2>/dev/null"
