"""Two simulator containers on a lab node pair, one database lease, one load balancer.

Both nodes and the load balancer are sampled every 100 ms for the whole
test: the nodes through the bastion (they have no route from here), the
load balancer directly, as a user reaches it.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import pytest

from lab.aws import read_secret, secrets_client
from nodeops.edges.ssh import Fleet, execute
from nodeops.inventory import load_inventory
from tests.e2e.probe import PairProbe, wait_for

pytestmark = pytest.mark.lab

SERVICE = "cl4"  # a pair of its own in the shared lab
LEASE, REFRESH = 3.0, 1.0
FILES = "/run/nodeops-test"  # the node's /run is RAM-backed


def sh(conn, command: str):
    return execute(conn, command)


def put_secret_file(conn, path: str, data: str) -> None:
    """Created 0400 for the container user before its first byte is written (as root); never in an argv."""
    assert sh(conn, f"install -m 0400 -o 14933 -g 14933 /dev/null {path}").exit_code == 0
    assert execute(conn, f"cat > {path}", stdin=data.encode()).exit_code == 0


def test_one_active_sigterm_hands_over_fast_sigkill_waits_for_the_lease(lab, figures):
    inventory = load_inventory(lab.inventory)
    service = inventory.services[SERVICE]
    a, b = service.nodes
    aws = inventory.secret_backends["aws"]
    client = secrets_client(urlsplit(aws.endpoint_url).port)
    db, wallet, api = (read_secret(client, f"{SERVICE}/{n}") for n in ("DBSecret", "WalletSecret", "ApiSecret"))
    v = service.variables
    url = (f"postgresql://{quote(db['username'], safe='')}:{quote(db['password'], safe='')}@"
           f"{v['DATABASE_HOST']}:{v['DATABASE_PORT']}/{v['DATABASE_NAME']}?sslmode=disable")  # fmt: skip
    files = {
        "config.toml": f"[Log]\nLevel = 'debug'\n[WebServer]\nHTTPPort = 6688\n"
        f"[Database.Lock]\nLeaseDuration = '{LEASE:g}s'\nLeaseRefreshInterval = '{REFRESH:g}s'\n",
        "secrets.toml": f"[Database]\nURL = '{url}'\n[Password]\nKeystore = '{wallet['password']}'\n",
        ".api": f"{api['username']}\n{api['password']}\n",
    }
    name = f"{SERVICE}-sim"
    run = (f"docker run -d --name {name} -p 6688:6688 -v {FILES}:/chainlink:ro {service.image} "
           "node -config /chainlink/config.toml -secrets /chainlink/secrets.toml start -a /chainlink/.api")  # fmt: skip

    with Fleet(inventory) as fleet:
        conns = {n.name: fleet.connect(n)[0] for n in (a, b)}
        for conn in conns.values():
            fresh = f"docker rm -f {name}; rm -rf {FILES} && install -d -m 0500 -o 14933 {FILES}"
            assert sh(conn, fresh).exit_code == 0
            for file, data in files.items():
                put_secret_file(conn, f"{FILES}/{file}", data)
        try:
            with PairProbe(lab.inventory, SERVICE) as probe:
                assert sh(conns[a.name], run).exit_code == 0
                wait_for(lambda: probe.serving(0, 0), "node a to serve")
                assert sh(conns[b.name], run).exit_code == 0
                wait_for(lambda: "waiting for lease" in sh(conns[b.name], f"docker logs {name} 2>&1").stdout,
                         "the standby to wait for the lease")  # fmt: skip
                time.sleep(1)  # let the probe see the steady state: a serves, b waits

                stopped = time.monotonic()
                sh(conns[a.name], f"docker stop -t 10 {name}")  # SIGTERM: a releases the lease
                took_over = wait_for(lambda: probe.serving(1, stopped), "node b to take over after SIGTERM")
                planned_gap = took_over - probe.last_serving(0, took_over)

                sh(conns[a.name], f"docker start {name}")  # a comes back as the standby
                time.sleep(2)
                killed = time.monotonic()
                sh(conns[b.name], f"docker kill {name}")  # SIGKILL: nothing is released
                back = wait_for(lambda: probe.serving(0, killed), "node a to take over after SIGKILL")
                unplanned_gap = back - probe.last_serving(1, back)
        finally:
            for conn in conns.values():
                sh(conn, f"docker rm -f {name}; rm -rf {FILES}")

    assert not probe.both, f"both nodes served at {len(probe.both)} sampled instants"
    figures(f"SIGTERM handover: {planned_gap:.2f}s, SIGKILL takeover: {unplanned_gap:.2f}s "
          f"(lease {LEASE:g}s, refresh {REFRESH:g}s), {len(probe.samples)} samples")  # fmt: skip
    assert planned_gap < LEASE  # about one refresh interval, not a lease
    assert unplanned_gap >= LEASE - REFRESH - 0.2  # only once the killed node's lease expired
    # The load balancer followed: its answers came from a, then b, then a again
    # (each a different process: the restarted node has a new appID).
    answered = [(app, "a" if nodes[0] else "b") for _, nodes, app in probe.samples if app and any(nodes)]
    order = [node for i, (_, node) in enumerate(answered) if i == 0 or node != answered[i - 1][1]]
    assert order == ["a", "b", "a"], order
    assert len({app for app, _ in answered}) == 3
