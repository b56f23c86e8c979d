"""The container engine of a lab node: Debian's podman with runc, one per host,
speaking the Docker Engine API on a socket that the real docker CLI reaches
over SSH (sshd sets DOCKER_HOST). Pure: file contents and argv only.

Each host keeps its images and containers under its own lab directory
(``storage_root``) and its engine configuration in its own /etc/containers
(a bind mount in the host's mount namespace); it also reads the machine's
shared read-only image store (``image.shared_store``: what a pull would
unpack is there already). Its /run is a tmpfs of its own, so runtime state,
the API socket and container network namespaces never mix between hosts or
leak into the operator's namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.topology import ENGINE_SOCKET, LabPlan

DOCKER_HOST = f"unix://{ENGINE_SOCKET}"


def storage_root(host_dir: Path) -> Path:
    return host_dir / "containers" / "storage"


def config_files(plan: LabPlan, host_dir: Path, shared_images: Path) -> dict[str, str]:
    """Files of the host's /etc/containers, by name. ``shared_images``: a read-only image store the engine reads
    besides its own (image.shared_store)."""
    return {
        "containers.conf": "\n".join([
            "[containers]",
            # podman's defaults exceed this machine's hard limits and are refused
            'default_ulimits = ["nofile=16384:16384", "nproc=8192:8192"]',
            'log_driver = "k8s-file"',  # no journald here; `docker logs` reads these files
            "log_size_max = 10485760",
            "[network]",
            'network_backend = "netavark"',
            "[engine]",
            'cgroup_manager = "cgroupfs"',  # no systemd here
            'events_logger = "file"',
            'runtime = "runc"',  # crun fails: "cgroups in hybrid mode not supported"
            "",
        ]),
        "storage.conf": "\n".join([
            "[storage]",
            'driver = "overlay"',
            'runroot = "/run/containers/storage"',
            f'graphroot = "{storage_root(host_dir)}"',
            "[storage.options]",
            f'additionalimagestores = ["{shared_images}"]',
            "[storage.options.overlay]",
            'mountopt = "nodev"',
            "",
        ]),
        # Plain HTTP only for the lab's own registry, only inside the lab.
        "registries.conf": "\n".join([
            "unqualified-search-registries = []",
            "[[registry]]",
            f'location = "{plan.registry_address}"',
            "insecure = true",
            "",
        ]),
        "policy.json": json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n",
    }  # fmt: skip


def storage_args(host_dir: Path, shared_images: Path) -> tuple[str, ...]:
    """podman's storage flags for the host: its own root (the daemon's marker, lab.daemons) and the shared read-only
    image store. Both on the command line: given ``--root``, podman drops every storage option of storage.conf (seen:
    ``podman --root X info`` lists no additional store); the ``--storage-opt`` names are containers-storage's."""
    return ("--root", str(storage_root(host_dir)), "--storage-opt", f"additionalimagestore={shared_images}",
            "--storage-opt", "overlay.mountopt=nodev")  # fmt: skip


def service_command(sshd_pid: int, host_dir: Path, shared_images: Path) -> tuple[str, ...]:
    """The engine, started inside the namespaces of the host whose sshd is ``sshd_pid``."""
    return (
        "nsenter", f"--target={sshd_pid}", "--mount", "--net", "--uts", "--",
        "podman", *storage_args(host_dir, shared_images), "system", "service", "--time=0", DOCKER_HOST,
    )  # fmt: skip


def in_host(sshd_pid: int, *argv: str) -> tuple[str, ...]:
    """Run ``argv`` inside a lab host's namespaces with the host's DOCKER_HOST (lab setup only)."""
    return ("nsenter", f"--target={sshd_pid}", "--mount", "--net", "--uts", "--",
            "env", f"DOCKER_HOST={DOCKER_HOST}", *argv)  # fmt: skip


def registry_config(plan: LabPlan, data_dir: Path) -> str:
    """Debian's docker-registry (distribution 2.x), plain HTTP on the private network."""
    return "\n".join([
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {data_dir}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {plan.registry_address}",
        "",
    ])  # fmt: skip
