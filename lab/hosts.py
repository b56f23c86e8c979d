"""Each lab host's own daemons, started unless they run: its sshd (whose process carries the host's namespaces), a
node's container engine (podman serving the Docker API), the registry; and a node's containers removed at the end.
``cache`` is the machine's lab cache (rootfs, registry blobs: lab.host.CACHE)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lab import engine, image
from lab.daemons import Daemons, Started, listening, run
from lab.topology import ENGINE_SOCKET, LabHost, LabPlan, boot_command, sshd_config

if TYPE_CHECKING:
    from lab.host import Lab

SSHD = "/usr/sbin/sshd"


def operator_key(lab: Lab) -> Path:
    """The operator's lab identity, authorised on every lab host."""
    op = lab.dir / "operator"
    op.mkdir(mode=0o700, exist_ok=True)
    key = op / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nodeops-lab-operator", "-f", str(key)])
    authorized = op / "authorized_keys"
    authorized.write_text((op / "id_ed25519.pub").read_text())
    authorized.chmod(0o600)
    return authorized


def host_key(lab: Lab, host: LabHost) -> str:
    """The host's SSH host key as the inventory pins it: ``ssh-ed25519 <base64>`` (written by ensure_sshd)."""
    kind, blob = (lab.host_dir(host) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{kind} {blob}"


def ensure_sshd(
    lab: Lab, daemons: Daemons, plan: LabPlan, host: LabHost, authorized: Path, cache: Path
) -> Started | None:
    """Start the host's sshd unless it already runs."""
    hdir = lab.host_dir(host)
    hdir.mkdir(parents=True, mode=0o700, exist_ok=True)
    key = hdir / "ssh_host_ed25519_key"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{host.name}.lab", "-f", str(key)])
    config = hdir / "sshd_config"
    config.write_text(sshd_config(plan, host, str(hdir), str(authorized)))
    if daemons.running(f"{host.name}/sshd"):
        return None
    # sshd carries the host's namespaces: a new one is a rebooted host, whose
    # engine and containers (left in the old namespaces) go with the old one.
    daemons.stop([f"{host.name}/engine"])
    kill_container_leftovers(lab, host.name)
    for private, mode in (("root", 0o700), ("tmp", 0o1777)):
        (hdir / private).mkdir(exist_ok=True)
        (hdir / private).chmod(mode)
    etc_ssh = hdir / "etc-ssh"  # the host's /etc/ssh, bound at boot: its host keys where a real host has them
    etc_ssh.mkdir(exist_ok=True)
    for name in (key.name, f"{key.name}.pub"):
        if not (etc_ssh / name).exists():
            os.link(hdir / name, etc_ssh / name)
    if host.kind == "node":
        etc = hdir / "etc-containers"  # the host's /etc/containers, bound at boot
        (etc / "networks").mkdir(parents=True, exist_ok=True)
        image.shared_store(cache).mkdir(parents=True, exist_ok=True)  # the engine refuses a store it cannot stat
        for name, text in engine.config_files(plan, hdir, image.shared_store(cache)).items():
            (etc / name).write_text(text)
        engine.storage_root(hdir).mkdir(parents=True, exist_ok=True)
    pidfile = hdir / "sshd.pid"  # sshd writes it once its sockets are bound
    pidfile.unlink(missing_ok=True)
    argv = boot_command(host, SSHD, config, hdir)
    return daemons.start(f"{host.name}/sshd", argv, str(config), hdir / "sshd.log", pidfile.exists)


def ensure_engine(lab: Lab, daemons: Daemons, host: LabHost, cache: Path) -> Started | None:
    """The node's podman, serving the Docker API inside the node's namespaces."""
    hdir = lab.host_dir(host)
    if daemons.running(f"{host.name}/engine"):
        return None
    sshd = lab.sshd_pid(host)
    socket = Path(f"/proc/{sshd}/root{ENGINE_SOCKET}")  # the host's /run, seen from here
    argv = engine.service_command(sshd, hdir, image.shared_store(cache))
    return daemons.start(f"{host.name}/engine", argv, str(engine.storage_root(hdir)), hdir / "engine.log",
                         socket.exists)  # fmt: skip


def ensure_registry(lab: Lab, daemons: Daemons, plan: LabPlan, cache: Path) -> Started | None:
    hdir = lab.host_dir(plan.registry)
    hdir.mkdir(parents=True, mode=0o700, exist_ok=True)
    config = hdir / "registry.yml"
    config.write_text(engine.registry_config(plan, image.registry_storage(cache)))
    if daemons.running("registry/registry"):
        return None
    argv = ("nsenter", f"--net=/run/netns/{plan.registry.netns}", "--", "docker-registry", "serve", str(config))
    ready = listening(plan.registry.netns, plan.registry_address)
    return daemons.start("registry/registry", argv, str(config), hdir / "registry.log", ready)


def remove_containers(lab: Lab, daemons: Daemons, host: str, cache: Path) -> None:
    """Containers outlive their engine (runc leaves them to init): remove them while it runs."""
    storage = engine.storage_root(lab.host_dir(host))
    listing = storage / "overlay-containers" / "containers.json"
    if daemons.running(f"{host}/sshd") and listing.exists() and json.loads(listing.read_text()):
        remove = ("podman", *engine.storage_args(lab.host_dir(host), image.shared_store(cache)), "rm", "--all",
                  "--force", "--time", "2")  # fmt: skip
        subprocess.run(engine.in_host(lab.sshd_pid_of(host), *remove), capture_output=True, timeout=120)


def kill_container_leftovers(lab: Lab, host: str) -> None:
    """If removal failed, a container's processes are found through its cgroup, and killed."""
    for container in (engine.storage_root(lab.host_dir(host)) / "overlay-containers").glob("*/"):
        for cgroup in Path("/sys/fs/cgroup").glob(f"*/libpod_parent/libpod-{container.name}"):
            with contextlib.suppress(OSError):
                for pid in (cgroup / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while cgroup.exists() and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
                time.sleep(0.05)
