"""Make a planned lab real on this machine, and take it down again.

Everything created is recorded in ``/var/lib/nodeops-lab/<name>/state.json`` before it
is created, and ``down`` removes exactly what that file lists: no namespace,
link or process that this lab did not make is ever touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from nodeops.errors import InvalidInput, LockHeld, OperationFailed
from nodeops.lab.topology import (
    LabHost,
    LabPlan,
    boot_command,
    network_commands,
    sshd_config,
    switch_commands,
    unreachable_route,
    uplink_commands,
)

SSHD = "/usr/sbin/sshd"
STATE_ROOT = Path("/var/lib/nodeops-lab")
READY_TIMEOUT = 20.0


def _run(argv: tuple[str, ...] | list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise OperationFailed(f"lab: {' '.join(argv)} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise InvalidInput(f"{action} must run as root (it creates network namespaces); run it with sudo")


class Lab:
    def __init__(self, repo: Path, name: str) -> None:
        # Outside the repository: a lab host mounts its own /root and /tmp,
        # which would hide a checkout (and its lab files) living under either.
        self.name = name
        self.dir = STATE_ROOT / name
        self.state_file = self.dir / "state.json"
        self.inventory_file = repo.resolve() / "inventory" / f"{name}.yaml"

    # -- state ---------------------------------------------------------------
    def load_state(self) -> dict:
        if not self.state_file.exists():
            return {"netns": [], "links": [], "pids": {}}
        return json.loads(self.state_file.read_text())

    def _save(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    # -- up ------------------------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self, action: str) -> Iterator[None]:
        """One lab.up/lab.down per lab at a time: interleaved, they would lose track of what exists."""
        require_root(action)
        STATE_ROOT.mkdir(mode=0o700, exist_ok=True)
        with open(STATE_ROOT / f"{self.name}.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise LockHeld(f"lab {self.name!r} is being changed by another run ({lock.read().strip()})") from None
            lock.truncate(0)
            lock.write(f"pid {os.getpid()}, {action}")
            lock.flush()
            yield

    def up(self, plan: LabPlan) -> Path:
        with self._exclusive("lab.up"):
            return self._up(plan)

    def down(self) -> list[str]:
        with self._exclusive("lab.down"):
            return self._down()

    def _up(self, plan: LabPlan) -> Path:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        state = self.load_state()
        if state.get("cidr", plan.cidr) != plan.cidr:
            raise InvalidInput(
                f"lab {plan.name!r} is up with --cidr {state['cidr']}; run `fab lab.down --name {plan.name}` first"
            )
        state["cidr"] = plan.cidr
        wanted = {h.netns for h in plan.hosts} | {plan.switch_netns}
        self._remove(state, [n for n in state["netns"] if n not in wanted])
        existing = set(_run(["ip", "netns", "list"]).split())
        authorized = self._operator_key()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir

        if plan.switch_netns not in existing:
            self._add_netns(state, plan.switch_netns)
            for cmd in switch_commands(plan):
                _run(cmd)
        for host in plan.hosts:
            if host.netns not in existing:
                self._add_netns(state, host.netns)
                for cmd in network_commands(plan, host):
                    _run(cmd)
        if plan.uplink not in state["links"]:
            state["links"].append(plan.uplink)
            self._save(state)
            for cmd in uplink_commands(plan):
                _run(cmd)
        if not state.get("route"):
            # Without this, lab addresses other than the bastion's would follow
            # the operator's default route off the machine.
            state["route"] = plan.cidr
            self._save(state)
            _run(unreachable_route(plan.cidr, "add"))
        started = {h: proc for h in plan.hosts if (proc := self._ensure_sshd(state, plan, h, authorized))}
        self._wait_ready(started)
        return self._write_inventory(plan)

    def _add_netns(self, state: dict, netns: str) -> None:
        state["netns"].append(netns)
        self._save(state)
        _run(["ip", "netns", "add", netns])

    def _operator_key(self) -> Path:
        """The operator's lab identity, authorised on every lab host."""
        op = self.dir / "operator"
        op.mkdir(mode=0o700, exist_ok=True)
        key = op / "id_ed25519"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nodeops-lab-operator", "-f", str(key)])
        authorized = op / "authorized_keys"
        authorized.write_text((op / "id_ed25519.pub").read_text())
        authorized.chmod(0o600)
        return authorized

    def host_dir(self, host: LabHost) -> Path:
        return self.dir / "hosts" / host.name

    def _ensure_sshd(self, state: dict, plan: LabPlan, host: LabHost, authorized: Path) -> subprocess.Popen | None:
        """Start the host's sshd unless it already runs; the new process, if one was started."""
        hdir = self.host_dir(host)
        hdir.mkdir(parents=True, mode=0o700, exist_ok=True)
        key = hdir / "ssh_host_ed25519_key"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{host.name}.lab", "-f", str(key)])
        config = hdir / "sshd_config"
        config.write_text(sshd_config(plan, host, str(hdir), str(authorized)))
        pid = state["pids"].get(host.netns)
        if pid and _is_ours(pid, config):
            return None
        for private, mode in (("root", 0o700), ("tmp", 0o1777)):
            (hdir / private).mkdir(exist_ok=True)
            (hdir / private).chmod(mode)
        (hdir / "sshd.pid").unlink(missing_ok=True)
        log = open(hdir / "sshd.log", "ab")
        proc = subprocess.Popen(
            boot_command(host, SSHD, config, hdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        state["pids"][host.netns] = proc.pid
        self._save(state)
        return proc

    def _wait_ready(self, started: dict[LabHost, subprocess.Popen]) -> None:
        """sshd writes its PidFile only after its listening sockets are bound."""
        deadline = time.monotonic() + READY_TIMEOUT
        pending = dict(started)
        while pending and time.monotonic() < deadline:
            for host, proc in list(pending.items()):
                log = self.host_dir(host) / "sshd.log"
                if proc.poll() is not None:
                    last = (log.read_text().strip().splitlines() or ["(no output)"])[-1]
                    raise OperationFailed(f"lab: sshd on {host.name} exited ({proc.returncode}): {last}; see {log}")
                if (self.host_dir(host) / "sshd.pid").exists():
                    del pending[host]
            if pending:
                time.sleep(0.05)
        if pending:
            names = ", ".join(h.name for h in pending)
            raise OperationFailed(f"lab: sshd did not start within {READY_TIMEOUT:g}s on {names}; see {self.dir}/hosts")

    def _write_inventory(self, plan: LabPlan) -> Path:
        identity = str(self.dir / "operator" / "id_ed25519")

        def pub(host: LabHost) -> str:
            kind, blob = (self.host_dir(host) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
            return f"{kind} {blob}"

        doc = {
            "environment": plan.name,
            "bastion": {
                "host": plan.bastion_public_ip,
                "user": "root",
                "identity_file": identity,
                "host_key": pub(plan.bastion),
            },
            "ssh": {"user": "root", "identity_file": identity, "max_parallel": 32},
            "services": {
                service: {
                    "role": "chainlink",
                    "image": "smartcontract/chainlink:2.10.0",
                    "nodes": [
                        {"name": n.name, "host": n.private_ip, "preferred": n.preferred, "host_key": pub(n)}
                        for n in nodes
                    ],
                }
                for service, nodes in plan.services().items()
            },
        }
        header = f"# Generated by `fab lab.up` for lab {plan.name!r} ({plan.cidr}); do not edit.\n"
        self.inventory_file.parent.mkdir(exist_ok=True)
        self.inventory_file.write_text(header + yaml.safe_dump(doc, sort_keys=False))
        return self.inventory_file

    # -- down ----------------------------------------------------------------
    def _down(self) -> list[str]:
        state = self.load_state()
        removed = list(state["netns"])
        self._remove(state, removed)
        if state.get("route"):
            subprocess.run(unreachable_route(state["route"], "del"), capture_output=True)
            state.pop("route")
            self._save(state)
        for link in list(state["links"]):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
            state["links"].remove(link)
            self._save(state)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.inventory_file.unlink(missing_ok=True)
        return removed

    def _remove(self, state: dict, netns_names: list[str]) -> None:
        """Stop the hosts' processes (all at once), then delete their namespaces."""
        _stop([pid for ns in netns_names if (pid := state["pids"].get(ns))])
        for netns in netns_names:
            state["pids"].pop(netns, None)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            state["netns"].remove(netns)
            self._save(state)


def _is_ours(pid: int, config: Path) -> bool:
    """True if ``pid`` is still the sshd we started with ``config`` (pids get reused).

    sshd rewrites its process title, so match within the whole command line.
    """
    try:
        return str(config).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    """Running and not a zombie (whoever reaps our orphans may take its time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop(pids: list[int]) -> None:
    """SIGTERM every still-running sshd among ``pids``, then SIGKILL what outlives 5 s."""
    ours = []
    for pid in pids:
        try:
            if b"sshd" in Path(f"/proc/{pid}/cmdline").read_bytes():  # not a reused pid
                os.kill(pid, signal.SIGTERM)
                ours.append(pid)
        except OSError:
            continue
    deadline = time.monotonic() + 5
    while (ours := [p for p in ours if process_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in ours:
        os.kill(pid, signal.SIGKILL)
