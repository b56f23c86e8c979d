"""Each node's container engine, driven by the real docker CLI through the bastion."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.conftest import fab

pytestmark = pytest.mark.lab


def on(lab, node: str, command: str) -> dict:
    """Run ``command`` on one node through the bastion (fab exec); return its JSON result."""
    res = fab("exec", "--inventory", str(lab.inventory), "--json", "--nodes", node, "--command", command)
    return next(e for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "host")


def test_a_container_publishes_on_its_own_node_and_is_invisible_to_the_others(lab):
    a, b = lab.plan.nodes[2], lab.plan.nodes[3]  # a pair of its own: other tests use cl1
    image = lab.doc()["services"][a.service]["image"]
    name = f"probe-{uuid.uuid4().hex[:8]}"
    started = on(lab, a.name, f"docker run -d --name {name} -p 6688:6688 --entrypoint python3 {image} "
                              f"-m http.server 6688")  # fmt: skip
    assert started["ok"], started
    try:
        assert on(lab, a.name, "docker info --format '{{.Name}}'")["stdout"].strip() == a.name
        fetch = (
            f"python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://{a.private_ip}:6688/\").status)'"
        )
        deadline = time.monotonic() + 30
        while (seen := on(lab, b.name, fetch))["stdout"].strip() != "200" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert seen["stdout"].strip() == "200", seen  # from the other node, on A's own address
        assert name in on(lab, a.name, "docker ps --format '{{.Names}}'")["stdout"].split()
        assert name not in on(lab, b.name, "docker ps -a --format '{{.Names}}'")["stdout"].split()
        refused = on(lab, b.name, fetch.replace(a.private_ip, b.private_ip))
        assert not refused["ok"] and "Connection refused" in refused["stderr"]  # nothing published on B
    finally:
        assert on(lab, a.name, f"docker rm -f {name}")["ok"]


def test_both_simulated_versions_are_in_the_lab_registry(lab):
    node = lab.plan.nodes[3]
    image = lab.doc()["services"][node.service]["image"]
    repository = image.rsplit(":", 1)[0]
    for version in ("2.10.0", "2.11.0"):
        pulled = on(lab, node.name, f"docker pull -q {repository}:{version} && "
                                    f"docker run --rm {repository}:{version} --version")  # fmt: skip
        assert pulled["ok"], pulled
        assert f"chainlink version {version}" in pulled["stdout"]
    user = on(lab, node.name, f"docker run --rm --entrypoint id {image}")["stdout"]
    assert user.startswith("uid=14933(chainlink)")  # non-root, as the real image
