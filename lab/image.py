"""The node simulator image: built once per machine, pushed to each lab's registry.

The real smartcontract/chainlink image cannot be pulled here, so the lab
builds a stand-in: a Debian bookworm rootfs (debootstrap, python3 +
psycopg2) cached in /var/lib/nodeops-lab/cache, plus the simulator script
and its version, imported by a lab node's engine with the docker CLI and
pushed to the lab registry, one tag per simulated version. A tag that the
shared registry storage already holds, built from the same inputs, is not
built again.
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
from collections.abc import Iterator
from pathlib import Path

from nodeops.errors import OperationFailed

SIM_SCRIPT = Path(__file__).resolve().parent / "images" / "chainlink-sim" / "chainlink"
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


def rootfs(cache: Path) -> Path:
    """The cached rootfs tarball; built with debootstrap (about a minute) if missing."""
    key = hashlib.sha256(f"bookworm minbase {PACKAGES} {TRIM}".encode()).hexdigest()[:12]
    tar = cache / f"rootfs-bookworm-{key}.tar"
    with _locked(cache / "rootfs.lock"):
        if tar.exists():
            return tar
        work = cache / f"rootfs-{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(work), debian_mirror()],
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


def write_image_tar(base: Path, version: str, sink) -> None:
    """Stream the image filesystem (base rootfs + simulator) as a tar into ``sink``."""
    with tarfile.open(base) as src, tarfile.open(fileobj=sink, mode="w|") as out:
        for member in src:
            if member.name in ("./etc/passwd", "./etc/group"):
                text = src.extractfile(member).read().decode()
                entry = f"chainlink:x:{UID}:{UID}:chainlink:/home/chainlink:/bin/sh\n"
                if member.name == "./etc/group":
                    entry = f"chainlink:x:{UID}:\n"
                _add(out, member.name, (text + entry).encode(), 0o644)
                continue
            out.addfile(member, src.extractfile(member) if member.isreg() else None)
        home = tarfile.TarInfo("./home/chainlink")
        home.type, home.mode, home.uid, home.gid = tarfile.DIRTYPE, 0o700, UID, UID
        out.addfile(home)
        _add(out, "./usr/local/bin/chainlink", SIM_SCRIPT.read_bytes(), 0o755)
        _add(out, "./usr/local/bin/VERSION", f"{version}\n".encode(), 0o644)


def inputs_key(base: Path, version: str) -> str:
    return hashlib.sha256(f"{base.name} {version} {CHANGES}".encode() + SIM_SCRIPT.read_bytes()).hexdigest()


def publish(cache: Path, registry: str, docker: tuple[str, ...]) -> list[str]:
    """Make sure the registry holds every simulated version; returns the image references.

    ``docker`` is the argv prefix that runs the docker CLI against a lab
    node's engine (which can reach the registry).
    """
    base = rootfs(cache)
    refs = []
    with _locked(cache / "images.lock"):
        record = cache / "images.json"
        built = json.loads(record.read_text()) if record.exists() else {}
        for version in SIM_VERSIONS:
            ref = f"{registry}/{REPOSITORY}:{version}"
            refs.append(ref)
            key = inputs_key(base, version)
            if built.get(version) == key and _in_registry(cache, version):
                continue
            changes = [arg for change in CHANGES for arg in ("--change", change)]
            importer = subprocess.Popen([*docker, "import", *changes, "-", ref], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
            feeder = threading.Thread(target=_feed, args=(base, version, importer))
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


def _feed(base: Path, version: str, importer: subprocess.Popen) -> None:
    try:
        write_image_tar(base, version, importer.stdin)
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


def _in_registry(cache: Path, version: str) -> bool:
    tags = registry_storage(cache) / "docker/registry/v2/repositories" / REPOSITORY / "_manifests/tags"
    return (tags / version / "current" / "link").exists()
