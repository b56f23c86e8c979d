"""The transport on the real lab: sshd hosts behind a real bastion, keys pinned."""

from __future__ import annotations

import concurrent.futures
import errno
import json
import os
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import paramiko
import pytest

from lab.host import Lab
from nodeops.edges.ssh import Fleet, execute
from nodeops.inventory import load_inventory
from tests.conftest import ROOT, fab
from tests.e2e.conftest import inventory_variant

pytestmark = pytest.mark.lab


def exec_json(inventory: Path, *args: str) -> tuple[int, dict[str, dict], dict, str]:
    res = fab("exec", "--inventory", str(inventory), "--json", *args)
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    hosts = {e["node"]: e for e in lines if e["event"] == "host"}
    summary = next(e for e in lines if e["event"] == "summary")
    return res.returncode, hosts, summary, res.stderr


def variant(lab, edit) -> Path:
    """A copy of the lab inventory with ``edit(doc)`` applied, next to the original."""
    return inventory_variant(lab.inventory, ROOT / "inventory" / f"{lab.plan.name}-{uuid.uuid4().hex[:8]}.yaml", edit)


def node_entry(doc: dict, name: str) -> dict:
    return next(n for s in doc["services"].values() for n in s["nodes"] if n["name"] == name)


def fingerprint(pubkey_line: str) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", "-"], input=pubkey_line, capture_output=True, text=True, check=True)
    return out.stdout.split()[1]  # "256 SHA256:... comment (ED25519)"


def test_every_node_answers_with_its_own_private_address(lab):
    code, hosts, summary, _ = exec_json(lab.inventory, "--command", "hostname; hostname -I")
    assert code == 0 and summary["ok"] == len(lab.plan.nodes) == len(hosts)
    for node in lab.plan.nodes:
        name, addresses = hosts[node.name]["stdout"].split("\n", 1)
        assert name == node.name
        assert addresses.split() == [node.private_ip]


def test_nodes_are_unreachable_without_the_bastion(lab):
    node = lab.plan.nodes[0]
    with socket.socket() as s:
        s.settimeout(3)
        with pytest.raises(OSError) as err:
            s.connect((node.private_ip, 22))
    assert err.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
    # ...while the bastion, which the operator can reach, reaches the node,
    with socket.create_connection((lab.plan.bastion_public_ip, 22), timeout=3) as s:
        assert s.recv(64).startswith(b"SSH-2.0-")
    probe = f"exec 3<>/dev/tcp/{node.private_ip}/22 && head -c 8 <&3"
    assert lab.nsenter("bastion", "bash", "-c", probe).stdout == "SSH-2.0-"
    # ...and does not route packets for anyone.
    assert lab.nsenter("bastion", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"


def host_tmp(lab, node: str) -> Path:
    """The node's own /tmp, as the operator sees it (each lab host has a private one)."""
    return Lab(ROOT, lab.plan.name).dir / "hosts" / node / "tmp"


def test_a_node_with_a_wrong_pinned_key_is_refused_and_runs_nothing(lab):
    victim, donor = lab.plan.nodes[0].name, lab.plan.nodes[1].name
    real_key = node_entry(lab.doc(), victim)["host_key"]
    donor_key = node_entry(lab.doc(), donor)["host_key"]
    inventory = variant(lab, lambda d: node_entry(d, victim).update(host_key=donor_key))
    marker = f"nodeops-test-{uuid.uuid4().hex}"
    try:
        code, hosts, _, _ = exec_json(inventory, "--nodes", f"{victim},{donor}", "--command", f"touch /tmp/{marker}")
        assert code == 4
        assert hosts[donor]["ok"]
        err = hosts[victim]["error"]
        assert victim in err and lab.plan.nodes[0].private_ip in err
        assert fingerprint(real_key) in err and fingerprint(donor_key) in err
        assert not (host_tmp(lab, victim) / marker).exists()  # nothing ran there
        assert (host_tmp(lab, donor) / marker).exists()
    finally:
        inventory.unlink()
        (host_tmp(lab, donor) / marker).unlink(missing_ok=True)


def test_an_unknown_bastion_key_is_refused_before_any_node(lab):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/k"], check=True)
        stranger = " ".join(Path(f"{tmp}/k.pub").read_text().split()[:2])
    real = lab.doc()["bastion"]["host_key"]
    inventory = variant(lab, lambda d: d["bastion"].update(host_key=stranger))
    marker = f"nodeops-test-{uuid.uuid4().hex}"
    try:
        res = fab("exec", "--inventory", str(inventory), "--command", f"touch /tmp/{marker}")
        assert res.returncode == 4
        line = res.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert "bastion" in line and lab.plan.bastion_public_ip in line
        assert fingerprint(real) in line and fingerprint(stranger) in line
        assert not any((host_tmp(lab, n.name) / marker).exists() for n in lab.plan.nodes)
    finally:
        inventory.unlink()


def test_bastion_runs_default_sshd_limits(lab):
    cfg = lab.plan.bastion
    sshd_t = subprocess.run(
        [
            "/usr/sbin/sshd",
            "-T",
            "-f",
            str(Lab(ROOT, lab.plan.name).dir / "hosts" / cfg.name / "sshd_config"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "maxstartups 10:30:100" in sshd_t.splitlines()


def test_64_nodes_ten_runs_in_a_row_without_a_single_failure(lab, figures):
    """Ours multiplexes one bastion transport; a plain `ssh -J` burst opens one bastion login per node."""
    assert len(lab.plan.nodes) == 64
    for run in range(10):
        code, hosts, summary, stderr = exec_json(lab.inventory, "--command", "true")
        assert (code, summary["ok"], summary["failed"]) == (0, 64, []), (run, stderr)
        assert all(h["attempts"] == 1 for h in hosts.values()), run
    failures = _ssh_jump_burst(lab)
    figures(f"plain `ssh -J` burst through the same bastion: {failures}/64 hosts failed")


def _ssh_jump_burst(lab) -> int:
    """64 parallel OpenSSH `ssh -J` runs of `true` with the lab's pinned keys; returns failures."""
    doc = lab.doc()
    identity = doc["ssh"]["identity_file"]
    with tempfile.TemporaryDirectory() as tmp:
        known = Path(tmp, "known_hosts")
        known.write_text(
            f"{lab.plan.bastion_public_ip} {doc['bastion']['host_key']}\n"
            + "".join(f"{n['host']} {n['host_key']}\n" for s in doc["services"].values() for n in s["nodes"])
        )
        config = Path(tmp, "ssh_config")
        config.write_text(
            f"Host *\n  User root\n  IdentityFile {identity}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
            f"  ConnectTimeout 10\n"
        )

        def one(host: str) -> int:
            return subprocess.run(
                ["ssh", "-F", str(config), "-J", lab.plan.bastion_public_ip, host, "true"],
                capture_output=True,
                timeout=60,
                env={**os.environ, "HOME": tmp},
            ).returncode

        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            codes = list(pool.map(one, [n.private_ip for n in lab.plan.nodes]))
    return sum(1 for c in codes if c)


def test_the_bastion_socket_sends_without_delay(lab):
    """Every node's traffic shares it: without TCP_NODELAY each small write waits for a delayed ACK (40 ms)."""
    with Fleet(load_inventory(lab.inventory)) as fleet:
        assert fleet._bastion_conn().transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_closing_the_fleet_after_the_bastion_link_died_raises_nothing(lab):
    """CI preview: a test's `with Fleet(...)` ended in EOFError from paramiko, raised while closing a node's
    connection whose tunnel through the bastion was already gone. Closing is the end of a run: a link that died
    before it has nothing left to close, and must not turn a finished run into a traceback."""
    inventory = load_inventory(lab.inventory)
    nodes = list(inventory.nodes)[:3]
    with Fleet(inventory) as fleet:
        assert all(outcome.ok for outcome in fleet.map(nodes, lambda link, _node: execute(link, "true")))  # kept open
        fleet._bastion_conn().transport.sock.shutdown(socket.SHUT_WR)  # the link dies under the tunnels, unnoticed


def test_a_run_closes_each_node_connection_once_its_command_is_done(lab):
    """An open paramiko transport wakes 10 times a second while it waits (its socket timeout, 0.1 s) until it is
    closed: with every node's kept open to the end of the run, a large run spent more CPU waking idle transports
    than running commands. Fleet.run closes each node's connection once its command is done and only the
    bastion's stays open; a fan-out that keeps them (Fleet.map: verify runs more on each) still does. Closing a
    node's tunnel while its transport sent a last message made the bastion drop every node's: ten runs of 64."""
    inventory = load_inventory(lab.inventory)
    nodes = list(inventory.nodes)

    def tunnelled(fleet: Fleet) -> list[paramiko.Transport]:  # the node transports open through this bastion
        bastion = fleet._bastion_conn().transport
        return [t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_active()
                and isinstance(t.sock, paramiko.Channel) and t.sock.get_transport() is bastion]  # fmt: skip

    with Fleet(inventory) as fleet:
        for run in range(10):
            outcomes = fleet.run(nodes, "true")
            assert [o.node.name for o in outcomes if not o.ok or o.value.exit_code] == [], run
            assert tunnelled(fleet) == [], run
        assert all(o.ok for o in fleet.map(nodes[:8], lambda link, _node: execute(link, "true")))
        assert len(tunnelled(fleet)) == 8
