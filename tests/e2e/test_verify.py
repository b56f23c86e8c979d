"""fab verify on a lab of its own: passes after a deploy, fails naming the check and node when a
secret file is planted, a pinned key is wrong or a node is cut off, and passes again once fixed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lab.aws import read_secret, secrets_client
from lab.host import Lab
from nodeops.verify import CHECKS
from tests.conftest import FAB, ROOT, fab
from tests.e2e.conftest import inventory_variant, own_lab

pytestmark = pytest.mark.lab

NAME, CIDR = "ver", "10.223.0.0/16"
NODES = ("cl1-a", "cl1-b", "cl2-a", "cl2-b")


@pytest.fixture(scope="module")
def ver(root):
    with own_lab(NAME, CIDR, deployed=True) as lab:
        yield lab


def verify(inventory: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    res = fab("verify", "--inventory", str(inventory), "--json")
    return res, [json.loads(line) for line in res.stdout.splitlines()]


def failed(checks: list[dict]) -> set[tuple[str, str]]:
    return {(c["node"], c["check"]) for c in checks if not c["ok"]}


def variant(lab: Lab, tmp_path: Path, edit) -> Path:
    return inventory_variant(lab.inventory_file, tmp_path / f"{NAME}.yaml", edit)


def node_path(lab: Lab, node: str, path: str) -> Path:
    """``path`` on the node host, seen from here (the host's own mounts: /run, /tmp, /root)."""
    return Path(f"/proc/{lab.sshd_pid_of(node)}/root{path}")


def test_verify_passes_after_deploy_and_names_a_planted_secret_file(ver):
    res, checks = verify(ver.inventory_file)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [(c["node"], c["check"]) for c in checks] == [(n, name) for n in NODES for name in CHECKS]
    assert all(c["ok"] and c["reason"] for c in checks) and res.stderr == ""
    port = {c["node"]: c["reason"] for c in checks if c["check"] == "port"}
    assert port["cl1-a"].startswith("the active") and port["cl1-b"].startswith("a standby: nothing answers")
    files = {c["node"]: c["reason"] for c in checks if c["check"] == "files-dir"}
    assert files["cl1-a"] == "holds nothing" and files["cl1-b"] == "holds .api (0400, uid 14933)"

    # A secret file left where the active no longer needs one, and a copy in a standby's /tmp.
    planted = [node_path(ver, "cl1-a", "/run/nodeops/cl1/.password"), node_path(ver, "cl2-b", "/tmp/secrets.toml")]
    for path in planted:
        path.write_text("planted\n")
    try:
        res, checks = verify(ver.inventory_file)
        tty = ["script", "--quiet", "--return", "--command", f"{FAB} verify --env {NAME}", "/dev/null"]
        human = subprocess.run(tty, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        for path in planted:
            path.unlink()
    assert res.returncode == 1
    assert failed(checks) == {("cl1-a", "files-dir"), ("cl2-b", "files-on-disk")}
    reasons = {(c["node"], c["check"]): c["reason"] for c in checks}
    assert reasons["cl1-a", "files-dir"] == "holds .password: not needed here (allowed: nothing)"
    assert reasons["cl2-b", "files-on-disk"] == "found /tmp/secrets.toml"
    assert res.stderr == "nodeops: 2 of 24 checks failed: cl1 cl1-a: files-dir; cl2 cl2-b: files-on-disk\n"
    # By hand: a table, not JSON, and the same one line at the end.
    assert human.returncode == 1 and "FAIL" in human.stdout and "22/24 checks passed" in human.stdout
    assert not human.stdout.lstrip().startswith("{") and "nodeops: 2 of 24 checks failed" in human.stdout

    res, checks = verify(ver.inventory_file)
    assert res.returncode == 0 and not failed(checks), res.stderr

    # Nothing secret in what verify printed, whatever it found.
    client = secrets_client(ver.load_state()["secrets_port"])
    for name in ("DBSecret", "WalletSecret", "ApiSecret"):
        assert read_secret(client, f"cl1/{name}")["password"] not in res.stdout + human.stdout


def new_key(tmp_path: Path, kind: str) -> str:
    path = tmp_path / kind
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def test_a_wrong_pinned_key_is_refused_and_a_stale_extra_pin_fails_the_check(ver, tmp_path):
    def pin(keys):
        return lambda doc: doc["services"]["cl1"]["nodes"][0].update(host_key=keys(doc["services"]["cl1"]["nodes"][0]))

    res, checks = verify(variant(ver, tmp_path, pin(lambda _node: new_key(tmp_path, "ed25519"))))
    assert res.returncode == 4, res.stderr
    assert res.stderr.startswith("nodeops: host key not the pinned one on cl1-a; 6 of 24 checks failed: cl1 cl1-a:")
    assert failed(checks) == {("cl1-a", name) for name in CHECKS}  # cl1-b's port is still checked: cl1-a serves
    reasons = {(c["node"], c["check"]): c["reason"] for c in checks}
    assert "does not match the pinned ssh-ed25519" in reasons["cl1-a", "host-keys"]
    assert reasons["cl1-a", "tmpfs"] == "not checked: its host key was refused"

    # The right key and a second, stale one: the connection verifies the right one, the check finds the other.
    res, checks = verify(variant(ver, tmp_path, pin(lambda node: [node["host_key"], new_key(tmp_path, "ecdsa")])))
    assert res.returncode == 1 and failed(checks) == {("cl1-a", "host-keys")}, res.stderr
    reasons = {(c["node"], c["check"]): c["reason"] for c in checks}
    assert reasons["cl1-a", "host-keys"].startswith("pinned ecdsa-sha2-nistp256 SHA256:")


def test_an_unreachable_node_fails_its_checks(ver, tmp_path):
    netns = f"nodeops-{NAME}-cl2-b"
    inventory = variant(ver, tmp_path, lambda doc: doc["ssh"].update(connect_timeout=2, connect_retries=0))
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        res, checks = verify(inventory)
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    assert res.returncode == 1 and failed(checks) == {("cl2-b", name) for name in CHECKS}, res.stderr
    assert all(c["reason"].startswith("unreachable: cl2-b") for c in checks if c["node"] == "cl2-b")
    assert "cl2 cl2-b: container-user, port, files-dir, files-on-disk, tmpfs, host-keys" in res.stderr
