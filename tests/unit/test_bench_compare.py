"""bench/compare.py's builders: OpenSSH and Ansible set up from a nodeops inventory, host keys as pinned."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.compare import BASTION, ansible_inventory, known_hosts, secret_variable, ssh_config, ssh_jump_argv
from nodeops.inventory import load_inventory
from tests.conftest import ROOT

INV = load_inventory(ROOT / "inventory" / "prod.example.yaml")
KH = Path("/dev/shm/x/known_hosts")


def test_known_hosts_has_every_pin_under_its_address():
    lines = known_hosts(INV).splitlines()
    assert lines == [
        f"203.0.113.24 {INV.bastions['bastion'].host_keys[0].line}",
        *(f"{n.host} {k.line}" for n in INV.nodes for k in n.host_keys),
    ]


def test_a_node_on_another_port_is_named_as_openssh_looks_it_up():
    node = dataclasses.replace(INV.nodes[0], port=2222)
    service = dataclasses.replace(INV.services["chainlink"], nodes=(node,))
    inv = dataclasses.replace(INV, services={"chainlink": service})
    assert f"[10.0.1.10]:2222 {node.host_keys[0].line}" in known_hosts(inv).splitlines()


def test_ssh_config_checks_host_keys_strictly_against_the_pins_only():
    text = ssh_config(INV, KH)
    options = [line.strip() for line in text.splitlines()]
    assert "StrictHostKeyChecking yes" in options
    assert "GlobalKnownHostsFile /dev/null" in options
    assert f"UserKnownHostsFile {KH} {INV.ssh.known_hosts}" in options  # the inventory's file is read too
    assert "UpdateHostKeys no" in options and "BatchMode yes" in options
    assert "accept-new" not in text and "StrictHostKeyChecking no" not in text


def test_ssh_config_names_the_bastion_and_its_identity():
    text = ssh_config(INV, KH)
    bastion = text.split(f"Host {BASTION}\n", 1)[1].split("Host ", 1)[0]
    assert "HostName 203.0.113.24" in bastion and "User ec2-user" in bastion
    assert f"IdentityFile {INV.bastions['bastion'].identity_file}" in bastion


def test_plain_ssh_jumps_through_the_bastion_with_the_config():
    assert ssh_jump_argv(Path("/c"), "10.0.1.10", 22, "true") == [
        "ssh", "-F", "/c", "-J", BASTION, "-p", "22", "10.0.1.10", "true",
    ]  # fmt: skip


def test_ansible_inventory_groups_nodes_by_role_and_jumps_through_the_bastion():
    doc = ansible_inventory(INV, Path("/c"), service_vars={"chainlink": {"nodeops_image": "img"}})["all"]
    nodes = doc["children"]["nodes"]
    assert nodes["hosts"]["cl-a"] == {
        "ansible_host": "10.0.1.10", "ansible_port": 22, "nodeops_service": "chainlink", "nodeops_image": "img",
    }  # fmt: skip
    assert nodes["vars"]["ansible_ssh_common_args"] == f"-F /c -J {BASTION}"
    assert nodes["vars"]["ansible_user"] == "ec2-user"
    assert list(doc["children"]["active"]["hosts"]) == ["cl-a", "bp-a"]  # the example's pool has its producers
    assert list(doc["children"]["standby"]["hosts"]) == ["cl-b", "bp-b"]
    assert doc["children"]["bastion"]["hosts"][BASTION]["ansible_ssh_common_args"] == "-F /c"


def test_ansible_inventory_of_chosen_nodes_only():
    doc = ansible_inventory(INV, Path("/c"), ["cl-b"])["all"]["children"]
    assert list(doc["nodes"]["hosts"]) == ["cl-b"] and doc["active"]["hosts"] == {}


def test_secret_variables_are_valid_environment_names():
    assert secret_variable("cl-1", "db_user") == "NODEOPS_BENCH_CL_1_DB_USER"
    assert secret_variable("cl1", "") == "NODEOPS_BENCH_CL1_"


def test_the_playbook_starts_the_very_docker_run_nodeops_does_built_without_a_deploy(job):
    """service_vars reaches `docker run` through the pure job.run_spec (no ServiceDeploy, no fleet): the argv a
    change starts for the same job, labelled with its inputs, an unknown digest ("none"), never a secret."""
    from bench.compare import service_vars
    from nodeops.commands.node import run
    from nodeops.job import run_spec

    argv = service_vars(job)["nodeops_docker_run"]
    assert argv == list(run(run_spec(job)))
    assert argv[:5] == [job.service.runtime, "run", "--detach", "--name", f"nodeops-{job.service.name}"]
    labels = [argv[i + 1] for i, word in enumerate(argv) if word == "--label"]
    assert "io.nodeops.digest=none" in labels and f"io.nodeops.config={job.rendered.config_hash}" in labels
    assert not any(job.redact.leaks(word) for word in argv)
    assert "io.nodeops.hot=true" in run(run_spec(job, "sha256:d", hot=True))
