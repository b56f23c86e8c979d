"""bench/ansible/deploy.yml really does what `fab deploy` does: run once on a pair of its own lab ("ans")."""

from __future__ import annotations

import dataclasses

import pytest

from bench import compare
from nodeops.edges.ssh import Fleet
from nodeops.facts.files import list_files
from nodeops.inventory import load_inventory
from nodeops.job import prepare
from tests.e2e.conftest import own_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ans(root):
    with own_lab("ans", "10.229.0.0/16", nodes=2) as lab:
        yield load_inventory(lab.inventory_file)


def test_the_playbook_brings_the_pair_up_as_nodeops_would(ans):
    jobs = prepare(ans)
    with compare.openssh_files(ans) as config:
        _, res = compare.deploy(ans, config, jobs, forks=2, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert not jobs[0].redact.leaks(res.stdout + res.stderr)  # no_log: no secret value in Ansible's output
    service = ans.services["cl1"]
    active, standby = service.active_preferred, service.standby_preferred
    with Fleet(ans) as fleet:
        assert fleet.http_get(active.host, 6688, "/health")[0] == 200  # served, through the bastion
        assert fleet.http_get(standby.host, 6688, "/health") is None  # waits for the lease
        files = {o.node.name: o.value.stdout.split() for o in fleet.run(service.nodes, list_files("cl1"))}
        assert files == {active.name: [], standby.name: [".api", "400", "14933"]}  # the rest shredded
        user = "docker inspect --format '{{.Config.User}}' nodeops-cl1; " \
               "ps -o uid= -p $(docker inspect --format '{{.State.Pid}}' nodeops-cl1)"  # fmt: skip
        for o in fleet.run(service.nodes, user):
            assert o.value.stdout.split() == ["14933:14933", "14933"], o.value


def test_openssh_refuses_a_node_whose_key_is_not_the_pinned_one(ans):
    wrong = dataclasses.replace(ans.nodes[0], host_keys=next(iter(ans.bastions.values())).host_keys)
    service = dataclasses.replace(ans.services["cl1"], nodes=(wrong, ans.nodes[1]))
    inv = dataclasses.replace(ans, services={"cl1": service})
    with compare.openssh_files(inv) as config:
        _, failed = compare.adhoc(inv, config, [n.name for n in inv.nodes], 2, "raw", "true")
        assert failed == 1
        assert compare.adhoc(inv, config, [ans.nodes[1].name], 2, "raw", "true")[1] == 0
