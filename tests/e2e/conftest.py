"""One lab for the whole test run: brought up once, shared, and taken down at the end."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lab.host import Lab
from lab.topology import LabPlan, plan_lab
from tests.conftest import ROOT, fab
from tests.e2e.pool_lab import pools  # noqa: F401  the pool modules' shared lab (a session fixture), registered here

LAB = "t"
CIDR = "10.214.0.0/16"  # not the default, so a developer's own `lab` keeps running
NODES = 64


@dataclass(frozen=True)
class RunningLab:
    plan: LabPlan
    inventory: Path

    def doc(self) -> dict:
        return yaml.safe_load(self.inventory.read_text())

    def nsenter(self, host: str, *argv: str) -> subprocess.CompletedProcess:
        netns = next(h.netns for h in self.plan.hosts if h.name == host)
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True, text=True, timeout=30
        )


@pytest.fixture(scope="session")
def root():
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces): run `sudo .venv/bin/pytest`", pytrace=False)


@pytest.fixture(scope="session")
def lab(root):
    up = fab("lab.up", "--name", LAB, "--nodes", str(NODES), "--cidr", CIDR)
    assert up.returncode == 0, up.stderr
    try:
        yield RunningLab(plan_lab(LAB, CIDR, NODES), ROOT / "inventory" / f"{LAB}.yaml")
    finally:
        down = fab("lab.down", "--name", LAB)
        assert down.returncode == 0, down.stderr
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"nodeops-{LAB}-" not in left, left


@contextlib.contextmanager
def own_lab(name: str, cidr: str, nodes: int = 4, deployed: bool = False) -> Iterator[Lab]:
    """A lab of a test module's own (a name and range no other module uses), optionally with every
    pair deployed; down at the end, even when bringing it up failed half way."""
    try:
        up = fab("lab.up", "--name", name, "--nodes", str(nodes), "--cidr", cidr)
        assert up.returncode == 0, up.stderr
        lab = Lab(ROOT, name)
        if deployed:
            deploy = fab("deploy", "--inventory", str(lab.inventory_file), timeout=600)
            assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        yield lab
    finally:
        assert fab("lab.down", "--name", name).returncode == 0


def inventory_variant(source: Path, path: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of the inventory ``source`` at ``path``, with ``edit`` applied to its document."""
    doc = yaml.safe_load(source.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc))
    return path


_RPC = """
import socket, sys
sock = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    sock.accept()[0].close()
"""


@contextlib.contextmanager
def rpc_stand_ins(name: str, cidr: str, nodes: int, ports: tuple[int, ...]) -> Iterator[tuple[str, dict]]:
    """An RPC stand-in (a TCP port that accepts, which the simulator's head listener probes) per port on the lab's
    db host: yields (its address, {port: process}); each stopped by pid at the end."""
    db = plan_lab(name, cidr, nodes).db
    started: dict[int, subprocess.Popen] = {}
    try:
        for port in ports:
            argv = ["nsenter", f"--net=/run/netns/{db.netns}", sys.executable, "-c", _RPC, db.private_ip, str(port)]
            started[port] = proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready and proc.stdout.readline() == b"listening\n", proc.stderr.read1().decode()
        yield db.private_ip, started
    finally:
        for proc in started.values():
            proc.kill()
            proc.wait(timeout=10)
