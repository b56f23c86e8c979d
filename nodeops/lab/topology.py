"""Plan a lab: names, addresses and links, computed without touching the machine.

Layout for ``--cidr 10.213.0.0/16`` (the default)::

    operator (root netns)  10.213.255.253/30 --veth-- .254  bastion netns
                                                      10.213.0.1    |
    switch netns: bridge br0 <-----------------------------------+  (private, /17)
        +-- 10.213.0.10  node netns (sshd)
        +-- 10.213.0.11  node netns (sshd) ...

The operator has a route to the bastion only; the bastion does not forward,
so node addresses are reachable solely through SSH channels on the bastion.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from nodeops.errors import InvalidInput

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
FIRST_NODE_OFFSET = 10  # .1 bastion, .2-.9 reserved for lab services
DEFAULT_CIDR = "10.213.0.0/16"


@dataclass(frozen=True)
class LabHost:
    name: str  # also the host's hostname
    netns: str
    private_ip: str
    switch_port: str  # the veth end that sits on the bridge
    service: str | None = None  # owning service, nodes only
    preferred: str | None = None  # active | standby, nodes only


@dataclass(frozen=True)
class LabPlan:
    name: str
    cidr: str
    private_prefixlen: int
    switch_netns: str
    uplink: str  # veth name in the operator's netns
    operator_ip: str
    bastion_public_ip: str
    bastion: LabHost
    nodes: tuple[LabHost, ...]

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        return (self.bastion, *self.nodes)

    @property
    def netns_names(self) -> tuple[str, ...]:
        return (self.switch_netns, *(h.netns for h in self.hosts))

    def services(self) -> dict[str, tuple[LabHost, ...]]:
        grouped: dict[str, tuple[LabHost, ...]] = {}
        for node in self.nodes:
            grouped[node.service] = (*grouped.get(node.service, ()), node)
        return grouped


def plan_lab(name: str, cidr: str, nodes: int) -> LabPlan:
    """Return the lab for ``nodes`` node hosts, paired into services cl1, cl2, ..."""
    if not NAME_RE.match(name):
        raise InvalidInput(f"lab name {name!r}: expected 1-8 lowercase letters/digits starting with a letter")
    try:
        net = ipaddress.IPv4Network(cidr)
    except ValueError as exc:
        raise InvalidInput(f"--cidr {cidr!r}: expected an IPv4 network such as {DEFAULT_CIDR} ({exc})") from None
    if not net.is_private or not 8 <= net.prefixlen <= 22:
        raise InvalidInput(f"--cidr {cidr}: expected a private IPv4 network between /8 and /22, e.g. {DEFAULT_CIDR}")
    if nodes < 2 or nodes % 2:
        raise InvalidInput(f"--nodes {nodes}: expected an even number >= 2 (nodes come in active/standby pairs)")
    private = next(net.subnets(prefixlen_diff=1))
    capacity = private.num_addresses - FIRST_NODE_OFFSET - 1
    if nodes > capacity:
        raise InvalidInput(f"--nodes {nodes}: {cidr} holds at most {capacity} nodes; give a larger --cidr")
    uplink_net = list(net.subnets(new_prefix=30))[-1]
    prefix = f"nodeops-{name}"

    def host(hostname: str, index: int, **extra: str) -> LabHost:
        return LabHost(
            name=hostname,
            netns=f"{prefix}-{hostname}",
            private_ip=str(private[FIRST_NODE_OFFSET + index - 1] if index else private[1]),
            switch_port=f"p{index}",
            **extra,
        )

    node_hosts = []
    for i in range(nodes):
        service = f"cl{i // 2 + 1}"
        standby = i % 2
        node_hosts.append(
            host(
                f"{service}-{'ab'[standby]}",
                i + 1,
                service=service,
                preferred="standby" if standby else "active",
            )
        )
    return LabPlan(
        name=name,
        cidr=str(net),
        private_prefixlen=private.prefixlen,
        switch_netns=f"{prefix}-net",
        uplink=f"nol-{name}",
        operator_ip=str(uplink_net[1]),
        bastion_public_ip=str(uplink_net[2]),
        bastion=host("bastion", 0),
        nodes=tuple(node_hosts),
    )


def network_commands(plan: LabPlan, host: LabHost) -> list[tuple[str, ...]]:
    """The ``ip`` commands that wire one host (its netns must exist) to the switch."""
    ns, sw, port = host.netns, plan.switch_netns, host.switch_port
    dev = "eth1" if host is plan.bastion else "eth0"  # the bastion's eth0 is its uplink
    peer = ("peer", "name", dev, "netns", ns)
    return [
        ("ip", "-n", ns, "link", "set", "lo", "up"),
        ("ip", "link", "add", port, "netns", sw, "type", "veth", *peer),
        ("ip", "-n", sw, "link", "set", port, "master", "br0", "up"),
        ("ip", "-n", ns, "addr", "add", f"{host.private_ip}/{plan.private_prefixlen}", "dev", dev),
        ("ip", "-n", ns, "link", "set", dev, "up"),
    ]


def switch_commands(plan: LabPlan) -> list[tuple[str, ...]]:
    """Bridge in the switch netns, plus the operator<->bastion uplink."""
    sw = plan.switch_netns
    return [
        ("ip", "-n", sw, "link", "set", "lo", "up"),
        ("ip", "-n", sw, "link", "add", "br0", "type", "bridge"),
        ("ip", "-n", sw, "link", "set", "br0", "up"),
    ]


def uplink_commands(plan: LabPlan) -> list[tuple[str, ...]]:
    b = plan.bastion.netns
    return [
        ("ip", "link", "add", plan.uplink, "type", "veth", "peer", "name", "eth0", "netns", b),
        ("ip", "addr", "add", f"{plan.operator_ip}/30", "dev", plan.uplink),
        ("ip", "link", "set", plan.uplink, "up"),
        ("ip", "-n", b, "addr", "add", f"{plan.bastion_public_ip}/30", "dev", "eth0"),
        ("ip", "-n", b, "link", "set", "eth0", "up"),
    ]


def boot_command(host: LabHost, sshd: str, config: Path, host_dir: Path) -> tuple[str, ...]:
    """Start one host: its netns, a private mount and UTS namespace, its own
    hostname, /root and /tmp, then sshd in the foreground.

    nsenter, not `ip netns exec`: the latter remounts /sys and hides the
    cgroup mounts that containers need.
    """
    boot = 'hostname "$0" && mount --bind "$3/root" /root && mount --bind "$3/tmp" /tmp && exec "$1" -D -e -f "$2"'
    return (
        "nsenter", f"--net=/run/netns/{host.netns}", "--",
        "unshare", "--mount", "--uts", "--propagation", "private", "--",
        "sh", "-c", boot, host.name, sshd, str(config), str(host_dir),
    )  # fmt: skip


def sshd_config(plan: LabPlan, host: LabHost, host_dir: str, authorized_keys: str) -> str:
    """sshd_config for one lab host. sshd's connection limits stay at their defaults."""
    is_bastion = host is plan.bastion
    listen = [host.private_ip] + ([plan.bastion_public_ip] if is_bastion else [])
    lines = [f"ListenAddress {ip}:22" for ip in listen] + [
        f"HostKey {host_dir}/ssh_host_ed25519_key",
        f"PidFile {host_dir}/sshd.pid",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AllowAgentForwarding no",
        # The bastion only relays TCP to nodes; nodes relay nothing.
        f"AllowTcpForwarding {'local' if is_bastion else 'no'}",
        "GatewayPorts no",
        "X11Forwarding no",
        "PermitTunnel no",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
    ]
    return "\n".join(lines) + "\n"


def unreachable_route(cidr: str, action: str) -> tuple[str, ...]:
    """Operator-side route that keeps lab traffic on this machine.

    The connected /30 to the bastion is more specific and still wins; every
    other lab address gets "no route to host" at once instead of following
    the default route off the machine.
    """
    return ("ip", "route", action, "unreachable", cidr)
