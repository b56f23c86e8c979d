"""The node simulator images: built once per machine, pushed to each lab's registry.

The real smartcontract/chainlink and ghcr.io/intersectmbo/cardano-node
images cannot be pulled here, so the lab builds stand-ins: a Debian bookworm
rootfs (debootstrap, python3 and the image's packages) cached in
/var/lib/nodeops-lab/cache, plus the simulator's files and its version,
imported by a lab node's engine with the docker CLI and pushed to the lab
registry, one tag per simulated version. A tag that the shared registry
storage already holds, built from the same inputs, is not built again.

``CHAINLINK`` is what ``lab.up`` publishes. ``CARDANO`` (the Cardano node
simulator and the chain service, lab/images/cardano-sim) is built only when
asked for (``publish(..., CARDANO)``: ``lab.up --pool``, lab/pool.py), on a rootfs of its own (PyNaCl and
cbor2 from Debian), so the default lab is not slowed. Its roles/cardano
modules are copied in from the repository at build time, never kept twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nodeops.errors import OperationFailed

IMAGES = Path(__file__).resolve().parent / "images"
REPO = Path(__file__).resolve().parents[1]
SIM_SCRIPT = IMAGES / "chainlink-sim" / "chainlink"
SIM_VERSIONS = ("2.10.0", "2.11.0")  # two, for upgrade tests
REPOSITORY = "smartcontract/chainlink"
UID = 14933  # the real image's non-root user
PACKAGES = "python3-minimal,python3-psycopg2"
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")
CHANGES = (
    'ENTRYPOINT ["chainlink"]',
    "USER chainlink",
    "WORKDIR /home/chainlink",
    "EXPOSE 6688",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
)


@dataclass(frozen=True)
class Image:
    """A simulator image: its repository and versions, the Debian packages of its rootfs, the user it adds
    (``(name, uid)``, or None to run as root), the Dockerfile instructions of ``docker import --change``, the
    file recording what was built (in the cache) and ``files``: ``{path in the image: (source file, mode)}``."""

    repository: str
    versions: tuple[str, ...]
    packages: str
    user: tuple[str, int] | None
    changes: tuple[str, ...]
    record: str
    files: Callable[[], dict[str, tuple[Path, int]]]


def _chainlink_files() -> dict[str, tuple[Path, int]]:
    return {"usr/local/bin/chainlink": (SIM_SCRIPT, 0o755)}


def _cardano_files() -> dict[str, tuple[Path, int]]:
    """The simulator and the chain service, the module they share, and the repository's roles/cardano with the
    one engine module it imports (nodeops.errors), under /usr/local/lib/cardano-sim (simchain.py finds them
    there)."""
    lib, sim = "usr/local/lib/cardano-sim", IMAGES / "cardano-sim"
    files = {f"usr/local/bin/{name}": (sim / name, 0o755) for name in ("cardano-node", "cardano-chain", "cardano-cli")}
    files[f"{lib}/simchain.py"] = (sim / "simchain.py", 0o644)
    for module in sorted((REPO / "roles" / "cardano").glob("*.py")):
        files[f"{lib}/roles/cardano/{module.name}"] = (module, 0o644)
    for name in ("__init__.py", "errors.py"):
        files[f"{lib}/nodeops/{name}"] = (REPO / "nodeops" / name, 0o644)
    return files


CHAINLINK = Image(REPOSITORY, SIM_VERSIONS, PACKAGES, ("chainlink", UID), CHANGES, "images.json", _chainlink_files)
CARDANO = Image(
    "intersectmbo/cardano-node",  # ghcr.io/intersectmbo/cardano-node, in the lab registry
    ("10.4.1", "10.5.1"),  # two, for upgrade tests
    "python3-minimal,python3-nacl,python3-cffi-backend,python3-cbor2",  # cffi: debootstrap resolves no virtual package
    None,  # the real image runs as root
    (
        'ENTRYPOINT ["cardano-node"]',
        "EXPOSE 3001",  # one port per change: podman's import refuses "EXPOSE 3001 12798"
        "EXPOSE 12798",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),  # fmt: skip
    "images-cardano-node.json",
    _cardano_files,
)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # labs share the cache: wait for the other builder
        yield


def debian_mirror() -> str:
    """The machine's own Debian mirror, as apt is configured (debootstrap needs one)."""
    for source in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        text = source.read_text() if source.exists() else ""
        if m := re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.M) or re.search(
            r"^deb\s+(\S+/debian)\s+bookworm", text, re.M
        ):
            return m.group(1)
    return "http://deb.debian.org/debian"


def rootfs(cache: Path, packages: str = PACKAGES) -> Path:
    """The cached rootfs tarball with ``packages`` (comma-separated); built with debootstrap (about a minute) if
    missing."""
    key = hashlib.sha256(f"bookworm minbase {packages} {TRIM}".encode()).hexdigest()[:12]
    tar = cache / f"rootfs-bookworm-{key}.tar"
    with _locked(cache / "rootfs.lock"):
        if tar.exists():
            return tar
        work = cache / f"rootfs-{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(work), debian_mirror()],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise OperationFailed(f"lab: debootstrap failed: {' / '.join(tail)}")
        for sub in TRIM:
            for child in (work / sub).glob("*"):
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        partial = tar.with_suffix(".partial")
        subprocess.run(["tar", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."], check=True)
        partial.replace(tar)
        shutil.rmtree(work)
        return tar


def _add(out: tarfile.TarFile, name: str, data: bytes, mode: int, uid: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, uid, int(time.time())
    out.addfile(info, io.BytesIO(data))


def write_image_tar(base: Path, version: str, sink, image: Image = CHAINLINK) -> None:
    """Stream the filesystem of ``image`` at ``version`` (base rootfs + the image's files + ``VERSION`` beside its
    programs) as a tar into ``sink``."""
    with tarfile.open(base) as src, tarfile.open(fileobj=sink, mode="w|") as out:
        for member in src:
            if image.user and member.name in ("./etc/passwd", "./etc/group"):
                name, uid = image.user
                text = src.extractfile(member).read().decode()
                entry = f"{name}:x:{uid}:{uid}:{name}:/home/{name}:/bin/sh\n"
                if member.name == "./etc/group":
                    entry = f"{name}:x:{uid}:\n"
                _add(out, member.name, (text + entry).encode(), 0o644)
                continue
            out.addfile(member, src.extractfile(member) if member.isreg() else None)
        if image.user:
            name, uid = image.user
            home = tarfile.TarInfo(f"./home/{name}")
            home.type, home.mode, home.uid, home.gid = tarfile.DIRTYPE, 0o700, uid, uid
            out.addfile(home)
        folders = set()
        for path, (source, mode) in image.files().items():
            for parent in [p for p in reversed(Path(path).parents[:-1]) if str(p).count("/") > 2]:  # below usr/local/*
                if parent not in folders:
                    folders.add(parent)
                    entry = tarfile.TarInfo(f"./{parent}")
                    entry.type, entry.mode = tarfile.DIRTYPE, 0o755
                    out.addfile(entry)
            _add(out, f"./{path}", source.read_bytes(), mode)
        _add(out, "./usr/local/bin/VERSION", f"{version}\n".encode(), 0o644)


def inputs_key(base: Path, version: str, image: Image = CHAINLINK) -> str:
    """What an image version is built from: the rootfs, the version, the import changes and its files' bytes."""
    sources = b"".join(source.read_bytes() for source, _ in image.files().values())
    return hashlib.sha256(f"{base.name} {version} {image.changes}".encode() + sources).hexdigest()


def publish(cache: Path, registry: str, docker: tuple[str, ...], image: Image = CHAINLINK) -> list[str]:
    """Make sure the registry holds every version of ``image``; returns the image references.

    ``docker`` is the argv prefix that runs the docker CLI against a lab
    node's engine (which can reach the registry).
    """
    base = rootfs(cache, image.packages)
    refs = []
    with _locked(cache / "images.lock"):
        record = cache / image.record
        built = json.loads(record.read_text()) if record.exists() else {}
        for version in image.versions:
            ref = f"{registry}/{image.repository}:{version}"
            refs.append(ref)
            key = inputs_key(base, version, image)
            if built.get(version) == key and _in_registry(cache, image.repository, version):
                continue
            changes = [arg for change in image.changes for arg in ("--change", change)]
            importer = subprocess.Popen([*docker, "import", *changes, "-", ref], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
            feeder = threading.Thread(target=_feed, args=(base, version, importer, image))
            feeder.start()
            out = importer.stdout.read()
            feeder.join()
            if importer.wait():
                raise OperationFailed(f"lab: docker import of {ref} failed: {out.decode(errors='replace').strip()}")
            for step in (["push", ref], ["rmi", ref]):
                proc = subprocess.run([*docker, *step], capture_output=True, text=True)
                if proc.returncode:
                    raise OperationFailed(f"lab: docker {step[0]} {ref} failed: {proc.stderr.strip()}")
            built[version] = key
            record.write_text(json.dumps(built, indent=1))
    return refs


def _feed(base: Path, version: str, importer: subprocess.Popen, image: Image) -> None:
    try:
        write_image_tar(base, version, importer.stdin, image)
    finally:
        importer.stdin.close()


def shared_store(cache: Path) -> Path:
    """A read-only image store that every lab node's engine reads besides its own (podman's
    ``additionalimagestores``, containers-storage.conf(5)), holding each simulated version unpacked once per
    machine. A node's pull of a version it holds there fetches the manifest and unpacks nothing (0.2 s, not 3.1 s,
    measured on a lab node); the pull still goes to the registry, which still decides (an unknown tag, a registry
    down: the same errors), and the node's own store records the pulled name. Real hosts have no such store: the
    lab's pulls are faster than theirs, not different in what they do."""
    return cache / "images"


def fill_shared_store(cache: Path, refs: list[str], podman: tuple[str, ...]) -> None:
    """Pull every ``refs`` into ``shared_store(cache)``; ``podman`` is the argv prefix that runs podman inside a lab
    node's namespaces (it reaches the lab's registry). A version already there is only checked (its layers are
    not fetched again). Under the cache's image lock: other labs read the store meanwhile."""
    store = shared_store(cache)
    with _locked(cache / "images.lock"):
        for ref in refs:
            proc = subprocess.run([*podman, "--root", str(store), "--runroot", "/run/nodeops-shared-images", "pull",
                                   "--quiet", ref], capture_output=True, text=True)  # fmt: skip
            if proc.returncode:
                raise OperationFailed(f"lab: pulling {ref} into the shared image store failed: {proc.stderr.strip()}")


def registry_storage(cache: Path) -> Path:
    """Shared by every lab's registry: blobs are content-addressed, and a second lab reuses them."""
    return cache / "registry"


def _in_registry(cache: Path, repository: str, version: str) -> bool:
    tags = registry_storage(cache) / "docker/registry/v2/repositories" / repository / "_manifests/tags"
    return (tags / version / "current" / "link").exists()
