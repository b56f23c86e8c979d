"""Two simulator containers on a lab node pair, one database lease, one load balancer.

Both nodes and the load balancer are sampled every 100 ms for the whole
test: the nodes through the bastion (they have no route from here), the
load balancer directly, as a user reaches it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import pytest

from nodeops.inventory import load_inventory
from nodeops.lab.services import read_secret, secrets_client
from nodeops.remote import Fleet

pytestmark = pytest.mark.lab

SERVICE = "cl4"  # a pair of its own in the shared lab
LEASE, REFRESH = 3.0, 1.0
FILES = "/run/nodeops-test"  # the node's /run is RAM-backed


@dataclass
class Samples:
    rows: list[tuple[float, bool, bool, str | None]] = field(default_factory=list)  # t, a serves, b serves, lb appID
    stop: threading.Event = field(default_factory=threading.Event)

    def serving(self, which: int, since: float) -> float | None:
        """First sampled time >= since at which node ``which`` (1=a, 2=b) served /health."""
        return next((r[0] for r in self.rows if r[0] >= since and r[which]), None)

    def last_serving(self, which: int, before: float) -> float:
        return max(r[0] for r in self.rows if r[0] <= before and r[which])


def sampler(fleet: Fleet, a, b, lb_url: str, samples: Samples) -> None:
    deadline = time.monotonic() + 120  # bounded whatever happens to the test
    while not samples.stop.is_set() and time.monotonic() < deadline:
        tick = time.monotonic()
        up = [(r := fleet.http_get(n.host, 6688, "/health")) is not None and r[0] == 200 for n in (a, b)]
        try:
            with urllib.request.urlopen(lb_url, timeout=1) as resp:
                via_lb = json.load(resp)["meta"]["appID"]
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            via_lb = None
        samples.rows.append((tick, up[0], up[1], via_lb))
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))


def wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def sh(conn, command: str):
    return conn.run(command, hide=True, warn=True, in_stream=False)


def put_secret_file(conn, path: str, data: str) -> None:
    """Created 0400 for the container user before its first byte is written; never in an argv."""
    assert sh(conn, f"install -m 0400 -o 14933 -g 14933 /dev/null {path}").ok
    with conn.sftp().open(path, "w") as f:
        f.write(data)


def test_one_active_sigterm_hands_over_fast_sigkill_waits_for_the_lease(lab):
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
    lb_url = f"http://{lab.plan.lb.public_ip}:{v['LB_PORT']}/health"

    with Fleet(inventory) as fleet:
        conns = {n.name: fleet.connect(n)[0] for n in (a, b)}
        for conn in conns.values():
            assert sh(conn, f"docker rm -f {name}; rm -rf {FILES} && install -d -m 0500 -o 14933 {FILES}").ok
            for file, data in files.items():
                put_secret_file(conn, f"{FILES}/{file}", data)
        samples = Samples()
        thread = threading.Thread(target=sampler, args=(fleet, a, b, lb_url, samples), daemon=True)
        thread.start()
        try:
            assert sh(conns[a.name], run).ok
            wait_for(lambda: samples.serving(1, 0), "node a to serve")
            assert sh(conns[b.name], run).ok
            wait_for(lambda: "waiting for lease" in sh(conns[b.name], f"docker logs {name} 2>&1").stdout,
                     "the standby to wait for the lease")  # fmt: skip
            time.sleep(1)  # let the sampler see the steady state: a serves, b waits

            stopped = time.monotonic()
            sh(conns[a.name], f"docker stop -t 10 {name}")  # SIGTERM: a releases the lease
            took_over = wait_for(lambda: samples.serving(2, stopped), "node b to take over after SIGTERM")
            planned_gap = took_over - samples.last_serving(1, took_over)

            sh(conns[a.name], f"docker start {name}")  # a comes back as the standby
            time.sleep(2)
            killed = time.monotonic()
            sh(conns[b.name], f"docker kill {name}")  # SIGKILL: nothing is released
            back = wait_for(lambda: samples.serving(1, killed), "node a to take over after SIGKILL")
            unplanned_gap = back - samples.last_serving(2, back)
            time.sleep(0.5)
        finally:
            samples.stop.set()
            thread.join(timeout=10)
            for conn in conns.values():
                sh(conn, f"docker rm -f {name}; rm -rf {FILES}")

    both = [r for r in samples.rows if r[1] and r[2]]
    assert not both, f"both nodes served at {len(both)} sampled instants"
    assert len(samples.rows) > 50
    print(f"\nSIGTERM handover: {planned_gap:.2f}s, SIGKILL takeover: {unplanned_gap:.2f}s "
          f"(lease {LEASE:g}s, refresh {REFRESH:g}s), {len(samples.rows)} samples")  # fmt: skip
    assert planned_gap < LEASE  # about one refresh interval, not a lease
    assert unplanned_gap >= LEASE - REFRESH - 0.2  # only once the killed node's lease expired
    # The load balancer followed: its answers came from a, then b, then a again
    # (each a different process: the restarted node has a new appID).
    answered = [(r[3], "a" if r[1] else "b") for r in samples.rows if r[3] and (r[1] or r[2])]
    order = [node for i, (_, node) in enumerate(answered) if i == 0 or node != answered[i - 1][1]]
    assert order == ["a", "b", "a"], order
    assert len({app for app, _ in answered}) == 3
