"""Make a planned lab real on this machine, and take it down again.

Everything created is recorded in ``/var/lib/nodeops-lab/<name>/state.json``
before it is created, and ``down`` removes exactly what that file lists: no
namespace, link, route or process that this lab did not make is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from lab import engine, hosts, image, kernel, monitoring, pool, services
from lab.daemons import Daemons, outlast, run
from lab.topology import (
    LabHost,
    LabPlan,
    network_commands,
    range_conflict,
    switch_commands,
    unreachable_route,
    uplink_commands,
)
from nodeops.errors import InvalidInput, LockHeld, OperationFailed

STATE_ROOT = Path("/var/lib/nodeops-lab")
CACHE = STATE_ROOT / "cache"  # the rootfs and registry blobs, kept across labs and lab.down


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise InvalidInput(f"{action} must run as root (it creates network namespaces); run it with sudo")


class Lab:
    def __init__(self, repo: Path, name: str) -> None:
        self.name = name
        # Outside the repository: a lab host mounts its own /root and /tmp,
        # which would hide a checkout (and its lab files) living under either.
        self.dir = STATE_ROOT / name
        self.state_file = self.dir / "state.json"
        self.inventory_file = repo.resolve() / "inventory" / f"{name}.yaml"
        self.state: dict = {}
        self.kernel_changes: list[str] = []  # "key: old -> new", each kernel limit the last up or down changed

    def host_dir(self, host: LabHost | str) -> Path:
        return self.dir / "hosts" / (host if isinstance(host, str) else host.name)

    # -- state -----------------------------------------------------------------
    def load_state(self) -> dict:
        if not self.state_file.exists():
            return {"netns": [], "links": [], "daemons": {}}
        return json.loads(self.state_file.read_text())

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def _exclusive(self, action: str) -> Iterator[Daemons]:
        """One lab.up/lab.down per lab at a time: interleaved, they would lose track of what exists."""
        require_root(action)
        STATE_ROOT.mkdir(mode=0o711, exist_ok=True)
        with open(STATE_ROOT / f"{self.name}.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise LockHeld(f"lab {self.name!r} is being changed by another run ({lock.read().strip()})") from None
            lock.truncate(0)
            lock.write(f"pid {os.getpid()}, {action}")
            lock.flush()
            self.state = self.load_state()
            yield Daemons(self.state["daemons"], self.save)

    # -- up --------------------------------------------------------------------
    def _record(self, plan: LabPlan) -> None:
        """What every lab's kernel limits are computed from: this lab's hosts and its neighbour entries per host.
        The lab's directory is made here, once the limits are met: a refused lab.up leaves none."""
        self.dir.mkdir(mode=0o711, exist_ok=True)  # 0711: service users (postgres) traverse to their dirs
        self.state.update(cidr=plan.cidr, hosts=len(plan.hosts), neighbours_per_host=kernel.per_host())
        self.save()

    def up(self, plan: LabPlan) -> Path:
        with self._exclusive("lab.up") as daemons:
            if self.state.get("cidr", plan.cidr) != plan.cidr:
                raise InvalidInput(
                    f"lab {plan.name!r} is up with --cidr {self.state['cidr']}; "
                    f"run `fab lab.down --name {plan.name}` first"
                )
            if "cidr" not in self.state:  # a lab coming up: its range must be free (one up owns its routes)
                refuse_a_held_range(self.name, plan.cidr)
            self.kernel_changes = kernel.raise_for(STATE_ROOT, self.name, len(plan.hosts), lambda: self._record(plan))
            wanted = {h.netns for h in plan.hosts} | {plan.switch_netns}
            self._remove(daemons, [n for n in self.state["netns"] if n not in wanted])
            make_network(self, plan)
            authorized = hosts.operator_key(self)
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
            Daemons.wait(
                [s for h in plan.ssh_hosts if (s := hosts.ensure_sshd(self, daemons, plan, h, authorized, CACHE))]
            )
            services.ensure(self, daemons, plan)
            Daemons.wait([s for h in plan.engine_hosts if (s := hosts.ensure_engine(self, daemons, h, CACHE))])
            Daemons.wait([s] if (s := hosts.ensure_registry(self, daemons, plan, CACHE)) else [])
            docker, podman = (engine.in_host(self.sshd_pid(plan.nodes[0]), cli) for cli in ("docker", "podman"))
            images = image.publish(CACHE, plan.registry_address, docker)
            image.fill_shared_store(CACHE, images, podman)
            pool.ensure(self, daemons, plan, CACHE, docker, podman)  # --pool: the chain, keys and image; else nothing
            inventory = write_inventory(self, plan, images)
            monitoring.ensure(self, daemons, plan, inventory)
            pool.first_hot(self, plan)  # last: the lab's first certificate lasts 60 s from when it is issued
            return inventory

    def sshd_pid(self, host: LabHost) -> int:
        return self.sshd_pid_of(host.name)

    def sshd_pid_of(self, host: str) -> int:
        """The pid whose namespaces are the host's (outside up/down, read from the state file)."""
        return (self.state or self.load_state())["daemons"][f"{host}/sshd"]["pid"]

    # -- down ------------------------------------------------------------------
    def down(self) -> list[str]:
        with self._exclusive("lab.down") as daemons:
            if not self.dir.exists():  # never up, or already down
                self.inventory_file.unlink(missing_ok=True)
                return []
            removed = list(self.state["netns"])
            self._remove(daemons, removed)
            daemons.stop(list(daemons.table))  # lab-wide daemons not tied to a host
            if self.state.get("route"):
                subprocess.run(unreachable_route(self.state["route"], "del"), capture_output=True)
                self.state.pop("route")
                self.save()
            for link in list(self.state["links"]):
                subprocess.run(["ip", "link", "del", link], capture_output=True)
                self.state["links"].remove(link)
                self.save()
            outlast(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.inventory_file.unlink(missing_ok=True)
            self.kernel_changes = kernel.restore(STATE_ROOT, self.name)
            return removed

    def _remove(self, daemons: Daemons, netns_names: list[str]) -> None:
        """Stop the hosts' daemons (all at once), then delete their namespaces."""
        prefix = f"nodeops-{self.name}-"
        names = {ns.removeprefix(prefix) for ns in netns_names}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda h: hosts.remove_containers(self, daemons, h, CACHE), names))
        daemons.stop([key for key in daemons.table if key.split("/")[0] in names])
        for name in names:
            hosts.kill_container_leftovers(self, name)
        for netns in netns_names:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            self.state["netns"].remove(netns)
            self.save()


def make_network(lab: Lab, plan: LabPlan) -> None:
    """The lab's namespaces, switch, uplinks and unreachable route: each recorded in ``lab``'s state before it is
    made, and only what is missing (lab.up is idempotent)."""
    existing = set(run(["ip", "netns", "list"]).split())
    if plan.switch_netns not in existing:
        _add_netns(lab, plan.switch_netns)
        for cmd in switch_commands(plan):
            run(cmd)
    for host in plan.hosts:
        if host.netns not in existing:
            _add_netns(lab, host.netns)
            for cmd in network_commands(plan, host):
                run(cmd)
    for host in plan.uplinked:
        if host.uplink not in lab.state["links"]:
            lab.state["links"].append(host.uplink)
            lab.save()
            for cmd in uplink_commands(host):
                run(cmd)
    if not lab.state.get("route"):
        # Without this, lab addresses other than the uplinks' would follow
        # the operator's default route off the machine.
        lab.state["route"] = plan.cidr
        lab.save()
        try:
            run(unreachable_route(plan.cidr, "add"))
        except OperationFailed:  # not made, so not this lab's to delete on lab.down
            lab.state.pop("route")
            lab.save()
            raise


def _add_netns(lab: Lab, netns: str) -> None:
    lab.state["netns"].append(netns)
    lab.save()
    run(["ip", "netns", "add", netns])


def refuse_a_held_range(name: str, cidr: str) -> None:
    """Refuse (InvalidInput, exit 2) before lab ``name`` makes anything when another lab or a route of this machine
    holds part of ``cidr`` (``range_conflict``): its unreachable route would fail, or shadow the other's, and its
    lab.down would take the other's route away."""
    labs = {other: state["cidr"] for other, state in kernel.other_labs(STATE_ROOT, name).items() if "cidr" in state}
    routes = json.loads(run(["ip", "-4", "-j", "route", "show", "table", "all"]) or "[]")
    if problem := range_conflict(cidr, labs, routes):
        raise InvalidInput(f"--cidr {cidr}: {problem}; give a --cidr that overlaps no lab or route here")


def write_inventory(lab: Lab, plan: LabPlan, images: list[str]) -> Path:
    """The lab's inventory, written where ``lab.inventory_file`` says: its bastion, its nodes' pinned host keys, the
    services' image and what lab.services names (secret backend, variables, secret references)."""
    identity = str(lab.dir / "operator" / "id_ed25519")
    pub = functools.partial(hosts.host_key, lab)
    managed = services.inventory_fragment(plan, lab.state)  # secret backend, per-service variables/secrets
    doc = {
        "environment": plan.name,
        "bastion": {
            "host": plan.bastion_public_ip,
            "user": "root",
            "identity_file": identity,
            "host_key": pub(plan.bastion),
        },
        "ssh": {"user": "root", "identity_file": identity, "max_parallel": 32},
        "secret_backends": managed["secret_backends"],
        **({"backup": managed["backup"]} if "backup" in managed else {}),
        "services": {
            service: {
                "role": "chainlink",
                "image": images[0],
                "nodes": [
                    {"name": n.name, "host": n.private_ip, "preferred": n.preferred, "host_key": pub(n)} for n in nodes
                ],
                **managed["services"][service],
            }
            for service, nodes in plan.services().items()
        }
        | pool.inventory_services(lab.state.get("pool")),  # the pool's service once its role exists
    }
    header = f"# Generated by `fab lab.up` for lab {plan.name!r} ({plan.cidr}); do not edit.\n"
    lab.inventory_file.parent.mkdir(exist_ok=True)
    lab.inventory_file.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return lab.inventory_file
