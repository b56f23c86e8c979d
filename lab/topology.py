"""Plan a lab: names, addresses and links, computed without touching the machine.

Layout for ``--cidr 10.213.0.0/16`` (the default)::

    operator (root netns) 10.213.255.253 --veth-- 10.213.255.254 bastion (sshd)
                          10.213.255.249 --veth-- 10.213.255.250 lb (HAProxy)
    switch netns: bridge br0, the private /17:
        10.213.0.1  bastion     10.213.0.2  db (PostgreSQL)
        10.213.0.3  registry    10.213.0.4  lb
        10.213.0.5  mon (Prometheus, node_exporter for fab check's textfile)
        10.213.0.10 cl1-a, 10.213.0.11 cl1-b, ...   nodes (sshd + container engine)
    with --pool, a Cardano stake pool beside them:
        10.213.0.6  chain (the Cardano chain service, lab/images/cardano-sim)
        10.213.127.251 pool-relay-a, .252 pool-relay-b, .253 pool-bp-a, .254 pool-bp-b   (sshd + container engine)

The operator reaches the bastion (SSH) and the load balancer (HTTP, as an
AWS target group's listener is reached), nothing else; neither forwards
packets, so the nodes and the database are reachable only through SSH
channels on the bastion. The topology has no public side for nodes: the
pool's relays are private too, reached like every node through the bastion.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from nodeops.errors import InvalidInput

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
FIRST_NODE_OFFSET = 10  # .1 bastion, .2-.9 lab services
DEFAULT_CIDR = "10.213.0.0/16"
NODE_PORT = 6688  # the Chainlink node's API/UI port
LB_FIRST_PORT = 6688  # service N listens on LB_FIRST_PORT + N - 1 on the load balancer
REGISTRY_PORT = 5000
DB_PORT = 5432
PROMETHEUS_PORT = 9090  # on the mon host: the lab's Prometheus
EXPORTER_PORT = 9100  # on the mon host: the node_exporter serving fab check's textfile
ENGINE_SOCKET = "/run/podman/podman.sock"
CHAIN_PORT = 3100  # on the chain host: the Cardano chain service's HTTP API
POOL_SERVICE = "pool"
POOL_HELP = (
    "also a Cardano stake pool: the chain service, 2 relays and 2 producers, their keys in the lab's Secrets "
    "Manager, the Cardano image (default off; an up without it removes the pool's hosts)"
)  # lab.up --pool
# The pool's hosts (--pool): (name, node kind, preferred), at the top of the private half, whatever --nodes is.
POOL_HOSTS = (("pool-relay-a", "relay", None), ("pool-relay-b", "relay", None),
              ("pool-bp-a", "producer", "active"), ("pool-bp-b", "producer", "standby"))  # fmt: skip


@dataclass(frozen=True)
class LabHost:
    name: str  # also the host's hostname
    kind: str  # bastion | node | db | registry | lb | monitoring | chain
    netns: str
    private_ip: str
    switch_port: str  # the veth end that sits on the bridge
    service: str | None = None  # owning service, nodes only
    preferred: str | None = None  # active | standby, nodes only
    uplink: str | None = None  # operator-side veth, for hosts the operator reaches
    operator_ip: str | None = None  # operator's end of that uplink
    public_ip: str | None = None  # this host's end of it
    node_kind: str | None = None  # relay | producer, the pool's nodes only (the role's kind)

    @property
    def private_dev(self) -> str:
        return "eth1" if self.uplink else "eth0"  # eth0 is the uplink where there is one


@dataclass(frozen=True)
class LabPlan:
    name: str
    cidr: str
    private_prefixlen: int
    switch_netns: str
    bastion: LabHost
    db: LabHost
    registry: LabHost
    lb: LabHost
    monitoring: LabHost
    nodes: tuple[LabHost, ...]
    chain: LabHost | None = None  # --pool: the Cardano chain service's host
    pool: tuple[LabHost, ...] = ()  # --pool: the pool's node hosts, in POOL_HOSTS's order

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        chain = (self.chain,) if self.chain else ()
        return (self.bastion, self.db, self.registry, self.lb, self.monitoring, *self.nodes, *chain, *self.pool)

    @property
    def ssh_hosts(self) -> tuple[LabHost, ...]:
        """Hosts that run sshd: the bastion and the nodes (db, registry, lb, mon and chain are managed services)."""
        return (self.bastion, *self.nodes, *self.pool)

    @property
    def engine_hosts(self) -> tuple[LabHost, ...]:
        """Hosts that run a container engine: the Chainlink nodes and the pool's."""
        return (*self.nodes, *self.pool)

    @property
    def chain_address(self) -> str:
        """The chain service's HTTP API (``http://ip:port``), on the chain host; ValueError for a lab without a pool."""
        if self.chain is None:
            raise ValueError(f"lab {self.name!r} has no pool (lab.up --pool)")
        return f"http://{self.chain.private_ip}:{CHAIN_PORT}"

    @property
    def uplinked(self) -> tuple[LabHost, ...]:
        return tuple(h for h in self.hosts if h.uplink)

    @property
    def netns_names(self) -> tuple[str, ...]:
        return (self.switch_netns, *(h.netns for h in self.hosts))

    @property
    def bastion_public_ip(self) -> str:
        return self.bastion.public_ip

    @property
    def prometheus_address(self) -> str:
        """Where the lab's Prometheus listens: on the mon host's private address, reached through the bastion."""
        return f"{self.monitoring.private_ip}:{PROMETHEUS_PORT}"

    @property
    def registry_address(self) -> str:
        return f"{self.registry.private_ip}:{REGISTRY_PORT}"

    def services(self) -> dict[str, tuple[LabHost, ...]]:
        grouped: dict[str, tuple[LabHost, ...]] = {}
        for node in self.nodes:
            grouped[node.service] = (*grouped.get(node.service, ()), node)
        return grouped

    def lb_port(self, service: str) -> int:
        return LB_FIRST_PORT + list(self.services()).index(service)


def plan_lab(name: str, cidr: str, nodes: int, pool: bool = False) -> LabPlan:
    """Return the lab for ``nodes`` node hosts, paired into services cl1, cl2, ...; with ``pool``, also the chain
    host and the pool's four hosts (POOL_HOSTS). InvalidInput (one line) for a bad name, range or count."""
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
    capacity = private.num_addresses - FIRST_NODE_OFFSET - 1 - (len(POOL_HOSTS) if pool else 0)
    if nodes > capacity:
        raise InvalidInput(f"--nodes {nodes}: {cidr} holds at most {capacity} nodes; give a larger --cidr")
    uplinks = list(net.subnets(new_prefix=30))[::-1]  # the last /30 for the bastion, the one before for the lb
    prefix = f"nodeops-{name}"

    def host(hostname: str, kind: str, address: int, port: str, uplink: int | None = None, **extra) -> LabHost:
        if uplink is not None:
            link = uplinks[uplink]
            veth = ("nol-", "nolb-")[uplink] + name
            extra |= {"uplink": veth, "operator_ip": str(link[1]), "public_ip": str(link[2])}
        return LabHost(hostname, kind, f"{prefix}-{hostname}", str(private[address]), port, **extra)

    node_hosts = tuple(
        host(f"cl{i // 2 + 1}-{'ab'[i % 2]}", "node", FIRST_NODE_OFFSET + i, f"p{i + 1}",
             service=f"cl{i // 2 + 1}", preferred="standby" if i % 2 else "active")
        for i in range(nodes)
    )  # fmt: skip
    pool_hosts = tuple(
        host(hostname, "node", private.num_addresses - 1 - len(POOL_HOSTS) + i, f"pp{i + 1}",
             service=POOL_SERVICE, preferred=preferred, node_kind=kind)
        for i, (hostname, kind, preferred) in enumerate(POOL_HOSTS if pool else ())
    )  # fmt: skip
    return LabPlan(
        name=name,
        cidr=str(net),
        private_prefixlen=private.prefixlen,
        switch_netns=f"{prefix}-net",
        bastion=host("bastion", "bastion", 1, "p0", uplink=0),
        db=host("db", "db", 2, "s-db"),
        registry=host("registry", "registry", 3, "s-reg"),
        lb=host("lb", "lb", 4, "s-lb", uplink=1),
        monitoring=host("mon", "monitoring", 5, "s-mon"),
        nodes=node_hosts,
        chain=host("chain", "chain", 6, "s-chain") if pool else None,
        pool=pool_hosts,
    )


def network_commands(plan: LabPlan, host: LabHost) -> list[tuple[str, ...]]:
    """The ``ip`` commands that wire one host (its netns must exist) to the switch."""
    ns, sw, port, dev = host.netns, plan.switch_netns, host.switch_port, host.private_dev
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


def uplink_commands(host: LabHost) -> list[tuple[str, ...]]:
    """The veth from the operator's netns to a host the operator reaches directly."""
    return [
        ("ip", "link", "add", host.uplink, "type", "veth", "peer", "name", "eth0", "netns", host.netns),
        ("ip", "addr", "add", f"{host.operator_ip}/30", "dev", host.uplink),
        ("ip", "link", "set", host.uplink, "up"),
        ("ip", "-n", host.netns, "addr", "add", f"{host.public_ip}/30", "dev", "eth0"),
        ("ip", "-n", host.netns, "link", "set", "eth0", "up"),
    ]


def boot_command(host: LabHost, sshd: str, config: Path, host_dir: Path) -> tuple[str, ...]:
    """Start one SSH host: its netns, a private mount and UTS namespace, its
    own hostname, /root, /tmp, /etc/ssh (its host keys) and a RAM-backed
    /run (as on a real host), a node's own /etc/containers and /dev/shm for
    its engine, then sshd.

    nsenter, not `ip netns exec`: the latter remounts /sys and hides the
    cgroup mounts that containers need. Paths are passed as $0..$3, never
    spliced into the script.
    """
    steps = [
        'hostname "$0"',
        "mount -t tmpfs -o mode=0755,size=64m run /run",
        "mkdir /run/sshd",
        'mount --bind "$3/root" /root',
        'mount --bind "$3/tmp" /tmp',
        'mount --bind "$3/etc-ssh" /etc/ssh',
    ]
    if host.kind == "node":
        steps += [
            f"mkdir {ENGINE_SOCKET.rsplit('/', 1)[0]}",
            'mount --bind "$3/etc-containers" /etc/containers',
            "mount -t tmpfs -o mode=1777,size=64m shm /dev/shm",
        ]
    steps.append('exec "$1" -D -e -f "$2"')
    return (
        "nsenter", f"--net=/run/netns/{host.netns}", "--",
        "unshare", "--mount", "--uts", "--propagation", "private", "--",
        "sh", "-c", " && ".join(steps), host.name, sshd, str(config), str(host_dir),
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
    if host.kind == "node":
        lines.append(f"SetEnv DOCKER_HOST=unix://{ENGINE_SOCKET}")  # the docker CLI finds the host's engine
    return "\n".join(lines) + "\n"


def unreachable_route(cidr: str, action: str) -> tuple[str, ...]:
    """Operator-side route that keeps lab traffic on this machine.

    The connected /30 to the bastion is more specific and still wins; every
    other lab address gets "no route to host" at once instead of following
    the default route off the machine.
    """
    return ("ip", "route", action, "unreachable", cidr)


def range_conflict(cidr: str, labs: dict[str, str], routes: list[dict]) -> str | None:
    """What already holds a part of ``cidr`` on this machine, as the middle of a one-line refusal; None if nothing.

    ``labs``: every other lab up, name -> its ``--cidr`` (any overlap conflicts: each adds an unreachable route for
    its whole range, and ``lab.down`` removes it). ``routes``: the machine's IPv4 routes of every table, as
    ``ip -4 -j route show table all`` lists them (each a dict with ``dst``: "default", "10.1.0.0/16" or a host
    address, and ``dev`` when it has one); one inside ``cidr`` conflicts (an interface's address or network, a route
    of another program). A wider route, the default one included, does not: the lab's own more specific route wins
    for its range, as it is meant to.
    """
    net = ipaddress.IPv4Network(cidr)
    for name, other in sorted(labs.items()):
        if net.overlaps(ipaddress.IPv4Network(other)):
            return f"lab {name!r} is up on {other}"
    for route in routes:
        if route.get("dst", "default") != "default" and ipaddress.IPv4Network(route["dst"]).subnet_of(net):
            kind = ", ".join(filter(None, (route.get("type"), route.get("dev") and f"dev {route['dev']}")))
            return f"this machine has a route to {route['dst']}" + (f" ({kind})" if kind else "")
    return None


# The neighbour (ARP) table is the machine's, shared by every network namespace: gc_thresh3 is its hard bound (past
# it the kernel logs "neighbour table overflow" and connections time out), gc_thresh2 its soft one (Linux's
# Documentation/networking/ip-sysctl.rst, neigh/default/gc_thresh*; defaults 1024 and 512). A lab host can add one
# entry in its own table for each of the 5 lab hosts it talks to (bastion, db, registry, lb, mon) and one in each of
# theirs for it: the bastion, lb and mon reach every node.
NEIGHBOURS_PER_HOST = 10
MACHINE_NEIGHBOURS = 256  # left for the machine's own interfaces on top of the labs' worst case
# Every task (process or thread) takes a pid, and kernel.pid_max bounds them all (Linux's
# Documentation/admin-guide/sysctl/kernel.rst, pid_max; 32768 by default). Measured: a lab host has about 10 (sshd,
# the podman service's threads), a deployed node 13 to 14 (its container and conmon), and a run's session adds about
# 5 more a node, a docker CLI about 10: 32 covers the worst case with room.
TASKS_PER_HOST = 32
MACHINE_TASKS = 8192  # left for the machine's own tasks (the operator's runs, the tests) on top of the labs'


def kernel_limits(labs: list[tuple[int, int]]) -> dict[str, int]:
    """The least sysctl values that carry every lab up at once: ``labs`` is each lab's (hosts: namespaces with an
    address, neighbour entries a host can add). Returns {sysctl key: least value}; a value at or above it needs no
    change. The neighbour table's hard bound holds the labs' worst case plus the machine's own, the soft bound half
    of it (the kernel's defaults keep that ratio, 512/1024); ``kernel.pid_max`` holds TASKS_PER_HOST a host plus
    the machine's own."""
    hard = sum(hosts * per_host for hosts, per_host in labs) + MACHINE_NEIGHBOURS
    tasks = TASKS_PER_HOST * sum(hosts for hosts, _ in labs) + MACHINE_TASKS
    return {
        "net.ipv4.neigh.default.gc_thresh2": hard // 2,
        "net.ipv4.neigh.default.gc_thresh3": hard,
        "kernel.pid_max": tasks,
    }
