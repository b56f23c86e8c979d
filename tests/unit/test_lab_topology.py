"""The lab plan: names, addresses and the exact commands that wire it."""

import subprocess
from pathlib import Path

import pytest

from lab.host import Lab
from lab.topology import (
    boot_command,
    network_commands,
    plan_lab,
    range_conflict,
    sshd_config,
    unreachable_route,
    uplink_commands,
)
from nodeops.errors import InvalidInput
from tests.conftest import ROOT


def test_plan_pairs_nodes_into_services_with_addresses_in_the_private_half():
    plan = plan_lab("lab", "10.213.0.0/16", 4)
    assert [(n.name, n.service, n.preferred, n.private_ip) for n in plan.nodes] == [
        ("cl1-a", "cl1", "active", "10.213.0.10"),
        ("cl1-b", "cl1", "standby", "10.213.0.11"),
        ("cl2-a", "cl2", "active", "10.213.0.12"),
        ("cl2-b", "cl2", "standby", "10.213.0.13"),
    ]
    assert plan.bastion.private_ip == "10.213.0.1"
    assert (plan.bastion.operator_ip, plan.bastion_public_ip) == ("10.213.255.253", "10.213.255.254")
    assert (plan.lb.operator_ip, plan.lb.public_ip) == ("10.213.255.249", "10.213.255.250")
    assert [(h.name, h.private_ip) for h in (plan.db, plan.registry, plan.lb, plan.monitoring)] == [
        ("db", "10.213.0.2"),
        ("registry", "10.213.0.3"),
        ("lb", "10.213.0.4"),
        ("mon", "10.213.0.5"),
    ]
    assert plan.ssh_hosts == (plan.bastion, *plan.nodes)  # db, registry, lb and mon are managed services
    assert plan.prometheus_address == "10.213.0.5:9090" and plan.monitoring.uplink is None  # only via the bastion
    assert [plan.lb_port(s) for s in plan.services()] == [6688, 6689]
    assert plan.private_prefixlen == 17
    assert plan.netns_names[:2] == ("nodeops-lab-net", "nodeops-lab-bastion")
    assert all(ns.startswith("nodeops-lab-") for ns in plan.netns_names)


@pytest.mark.parametrize(
    ("name", "cidr", "nodes", "fragment"),
    [
        ("Lab", "10.213.0.0/16", 2, "lab name 'Lab'"),
        ("averylongname", "10.213.0.0/16", 2, "1-8 lowercase"),
        ("lab", "10.213.0.0/33", 2, "expected an IPv4 network"),
        ("lab", "8.8.0.0/16", 2, "private IPv4 network"),
        ("lab", "10.213.0.0/24", 2, "between /8 and /22"),
        ("lab", "10.213.0.0/16", 3, "even number"),
        ("lab", "10.213.0.0/16", 0, "even number"),
        ("lab", "10.213.0.0/22", 600, "holds at most 501 nodes"),
    ],
)
def test_plan_rejects_bad_input_with_one_line(name, cidr, nodes, fragment):
    with pytest.raises(InvalidInput) as err:
        plan_lab(name, cidr, nodes)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def cmd(line: str) -> tuple[str, ...]:
    return tuple(line.split())


def test_node_wiring_commands():
    plan = plan_lab("t", "10.50.0.0/16", 2)
    assert network_commands(plan, plan.nodes[1]) == [
        cmd("ip -n nodeops-t-cl1-b link set lo up"),
        cmd("ip link add p2 netns nodeops-t-net type veth peer name eth0 netns nodeops-t-cl1-b"),
        cmd("ip -n nodeops-t-net link set p2 master br0 up"),
        cmd("ip -n nodeops-t-cl1-b addr add 10.50.0.11/17 dev eth0"),
        cmd("ip -n nodeops-t-cl1-b link set eth0 up"),
    ]
    # the bastion's private leg is eth1; eth0 is its uplink to the operator
    assert cmd("ip -n nodeops-t-bastion addr add 10.50.0.1/17 dev eth1") in network_commands(plan, plan.bastion)
    assert uplink_commands(plan.bastion) == [
        cmd("ip link add nol-t type veth peer name eth0 netns nodeops-t-bastion"),
        cmd("ip addr add 10.50.255.253/30 dev nol-t"),
        cmd("ip link set nol-t up"),
        cmd("ip -n nodeops-t-bastion addr add 10.50.255.254/30 dev eth0"),
        cmd("ip -n nodeops-t-bastion link set eth0 up"),
    ]
    assert uplink_commands(plan.lb)[0] == cmd("ip link add nolb-t type veth peer name eth0 netns nodeops-t-lb")
    assert unreachable_route(plan.cidr, "add") == cmd("ip route add unreachable 10.50.0.0/16")


def test_boot_command_enters_the_hosts_namespaces_then_execs_sshd():
    plan = plan_lab("t", "10.50.0.0/16", 2)
    argv = boot_command(plan.nodes[0], "/usr/sbin/sshd", Path("/s/cfg"), Path("/s/h"))
    enter = "nsenter --net=/run/netns/nodeops-t-cl1-a -- unshare --mount --uts --propagation private --"
    assert argv[:9] == cmd(enter) and argv[9:11] == ("sh", "-c")
    script, *args = argv[11:]
    assert args == ["cl1-a", "/usr/sbin/sshd", "/s/cfg", "/s/h"]  # $0..$3: data, never spliced into the script
    assert 'mount --bind "$3/root" /root' in script and 'mount --bind "$3/tmp" /tmp' in script
    assert 'mount --bind "$3/etc-ssh" /etc/ssh' in script  # its own host keys, where fab verify reads them
    assert script.endswith('exec "$1" -D -e -f "$2"')


def test_sshd_config_keeps_default_limits_and_relays_only_on_the_bastion():
    plan = plan_lab("t", "10.50.0.0/16", 2)
    bastion = sshd_config(plan, plan.bastion, "/s/b", "/s/ak")
    node = sshd_config(plan, plan.nodes[0], "/s/n", "/s/ak")
    for text in (bastion, node):
        assert "MaxStartups" not in text and "MaxSessions" not in text
        assert "PasswordAuthentication no" in text and "AllowAgentForwarding no" in text
        assert "AuthorizedKeysFile /s/ak" in text
    assert "AllowTcpForwarding local" in bastion and "ListenAddress 10.50.255.254:22" in bastion
    assert "AllowTcpForwarding no" in node and "ListenAddress 10.50.0.10:22" in node
    assert "ListenAddress 10.50.255.254:22" not in node


def ignored(path: Path) -> bool:
    res = subprocess.run(["git", "check-ignore", "--quiet", "--no-index", str(path.relative_to(ROOT))], cwd=ROOT)
    assert res.returncode in (0, 1), "not a git checkout"
    return res.returncode == 0


@pytest.mark.parametrize("name", ["lab", "t", "ops", "dep", "out", "bfail"])
def test_every_lab_inventory_and_its_variants_are_git_ignored(name):
    """Issue 13: only labs named lab* were. Whatever --name a lab has, its inventory (and the variants tests write
    beside it) stays out of git; the examples do not."""
    written = Lab(ROOT, name).inventory_file
    assert written.parent == ROOT / "inventory"
    assert ignored(written) and ignored(written.with_name(f"{name}-ci.yaml"))
    assert not ignored(ROOT / "inventory" / "prod.example.yaml")


def test_the_monitoring_hosts_daemons_and_the_operators_tunnel():
    from lab import monitoring

    plan, lab = plan_lab("t", "10.50.0.0/16", 2), Lab(ROOT, "t")
    assert monitoring.tunnel_command(lab, plan) == (
        "ssh -i /var/lib/nodeops-lab/t/operator/id_ed25519 -o UserKnownHostsFile=/var/lib/nodeops-lab/t/operator/"
        "known_hosts -N -L 9090:10.50.0.5:9090 root@10.50.255.254"
    )
    out, tsdb = Path("/o"), Path("/db")
    assert monitoring.prometheus_argv(plan, out, tsdb) == (
        "nsenter", "--net=/run/netns/nodeops-t-mon", "--", "/usr/bin/prometheus",
        "--config.file=/o/prometheus/prometheus-t.yml", "--storage.tsdb.path=/db",
        "--storage.tsdb.retention.time=1d", "--web.listen-address=10.50.0.5:9090",
    )  # fmt: skip
    assert monitoring.exporter_argv(plan, Path("/tf"))[3:] == (
        "/usr/bin/prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
        "--collector.textfile.directory=/tf", "--web.listen-address=10.50.0.5:9100",
    )  # fmt: skip
    got = monitoring.settings(plan)
    assert (got.exporter, got.prometheus_url, got.interval) == ("10.50.0.5:9100", "http://10.50.0.5:9090", "2s")


LAB_ROUTES = [  # `ip -4 -j route show table all` with the lab rst up on 10.236.0.0/16 (trimmed)
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"type": "unreachable", "dst": "10.236.0.0/16"},
    {"dst": "10.236.255.252/30", "dev": "nol-rst", "protocol": "kernel", "scope": "link"},
    {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link"},
    {"type": "local", "dst": "192.0.2.2", "dev": "eth0", "table": "local"},
]


@pytest.mark.parametrize(
    ("cidr", "labs", "routes", "conflict"),
    [
        ("10.213.0.0/16", {}, LAB_ROUTES, None),  # the default route and the machine's own network are wider or apart
        ("10.236.0.0/16", {"rst": "10.236.0.0/16"}, LAB_ROUTES, "lab 'rst' is up on 10.236.0.0/16"),  # the review's
        ("10.236.0.0/22", {"rst": "10.236.0.0/16"}, [], "lab 'rst' is up on 10.236.0.0/16"),  # inside another lab's
        ("10.0.0.0/8", {"rst": "10.236.0.0/16"}, [], "lab 'rst' is up on 10.236.0.0/16"),  # around another lab's
        ("10.236.0.0/16", {}, LAB_ROUTES, "this machine has a route to 10.236.0.0/16 (unreachable)"),  # no state left
        ("192.0.2.0/24", {}, LAB_ROUTES, "this machine has a route to 192.0.2.0/24 (dev eth0)"),  # an interface's net
        ("192.0.0.0/22", {}, LAB_ROUTES[-1:], "this machine has a route to 192.0.2.2 (local, dev eth0)"),  # an address
        ("10.0.0.0/8", {}, [{"dst": "0.0.0.0/0"}, {"dst": "10.0.0.0/7"}], None),  # wider routes: the lab's wins
    ],
)
def test_a_range_another_lab_or_a_route_holds_is_a_conflict(cidr, labs, routes, conflict):
    assert range_conflict(cidr, labs, routes) == conflict
