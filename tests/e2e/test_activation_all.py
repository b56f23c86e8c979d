"""Activation all carried out for real, on a lab of its own: a service of three nodes that all serve (the relays'
model), deployed from nothing, upgraded one node at a time behind a load balancer that never fails a probe, a
failed replace undone on its node while the others keep serving, and a node cut off refused as unsafe (exit 4).

The role is the operator's copy of the built-in Chainlink role saying ``activation: all`` (tests/e2e/test_activation.py
``all_role``); the built-in templates render ``[Database.Lock] Enabled = false`` for it (Chainlink's own switch for
running without the lease, which the simulator honours: every node serves at once on the one database). The three
nodes are the lab's cl1-a, cl1-b and cl2-a (the lab pairs its hosts; its cl2 service is left out of this inventory).
The lab's HAProxy fronts each lab pair only, so the service's load balancer is a real HAProxy of this module's own in
the lab's lb namespace, fronting all three nodes as one would front relays: health-checked every 200 ms, and a
request that finds its node gone, or loses it before the answer, is sent to another (``retries`` with ``option
redispatch 1`` and ``retry-on all-retryable-errors``: a health check is a GET, safe to send twice; and a connect timeout
of 100 ms: a stopped node's published port drops the connection attempt rather than refusing it, and the probe gives
up after 0.5 s; the lab's shared HAProxy keeps ``retries 0`` for the lease pairs, whose standby has no listener).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.balancer import HAPROXY
from lab.host import Lab
from lab.topology import LB_FIRST_PORT, NODE_PORT, plan_lab
from tests.conftest import fab
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import PairProbe, events, status_entries, wait_for
from tests.e2e.test_activation import all_role

pytestmark = pytest.mark.lab

NAME, CIDR = "grp", "10.246.0.0/16"
SERVICE = "cl1"
NODES = ("cl1-a", "cl1-b", "cl2-a")
LB_PORT = LB_FIRST_PORT + 50  # clear of the lab's own listeners (one per pair from LB_FIRST_PORT)


def haproxy_config(plan, port: int) -> str:
    """One listener for the three nodes (see the module's docstring)."""
    servers = [n for n in plan.nodes if n.name in NODES]
    return "\n".join([
        "global", "    log stdout format raw local0",
        "defaults", "    mode http", "    log global", "    option httplog",
        "    retries 2", "    option redispatch 1", "    retry-on all-retryable-errors",
        "    timeout connect 100ms",  # a stopped node's published port drops the SYN: retry elsewhere, and soon
        "    timeout client 30s", "    timeout server 30s", "    timeout check 500ms",
        "    default-server inter 200ms fastinter 200ms downinter 200ms fall 1 rise 1",
        f"listen {SERVICE}", f"    bind {plan.lb.public_ip}:{port}",
        "    option httpchk GET /health", "    http-check expect status 200",
        *(f"    server {n.name} {n.private_ip}:{NODE_PORT} check" for n in servers),
    ]) + "\n"  # fmt: skip


@contextlib.contextmanager
def load_balancer(folder: Path) -> Iterator[str]:
    """A real HAProxy in the lab's lb namespace fronting the three nodes; yields its health URL; stopped by pid."""
    plan = plan_lab(NAME, CIDR, 4)
    config = folder / "haproxy.cfg"
    config.write_text(haproxy_config(plan, LB_PORT))
    subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], check=True)
    argv = ["nsenter", f"--net=/run/netns/{plan.lb.netns}", "--", HAPROXY, "-db", "-f", str(config)]  # one process
    with (folder / "haproxy.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://{plan.lb.public_ip}:{LB_PORT}/health"
        wait_for(lambda: proc.poll() is not None or listening(plan.lb.public_ip, LB_PORT), "HAProxy to listen", 10)
        assert proc.poll() is None, (folder / "haproxy.log").read_text()
        yield url
    finally:
        proc.kill()  # nsenter execs HAProxy: this pid is HAProxy's
        proc.wait(timeout=10)


def listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def three_nodes(lb_url: str):
    """The lab's inventory edited: service cl1 takes cl2-a as its third node and the module's load balancer; the
    lab's cl2 service is left out (cl2-a is cl1's now)."""

    def edit(doc: dict) -> None:
        third = next(n for n in doc["services"]["cl2"]["nodes"] if n["name"] == "cl2-a")
        doc["services"][SERVICE]["nodes"].append({**third, "preferred": "standby"})
        doc["services"][SERVICE]["load_balancer"] = lb_url
        del doc["services"]["cl2"]

    return edit


@pytest.fixture(scope="module")
def grp(root, tmp_path_factory) -> Iterator[tuple[Lab, Path]]:
    project = tmp_path_factory.mktemp("grp")
    all_role(project)
    with own_lab(NAME, CIDR, nodes=4) as lab, load_balancer(project) as lb_url:
        yield lab, inventory_variant(lab.inventory_file, project / "inventory.yaml", three_nodes(lb_url))


def variant(base: Path, name: str, edit) -> Path:
    """A copy of the inventory ``base`` beside it, as ``name``.yaml, with ``edit`` applied."""
    return inventory_variant(base, base.with_name(f"{name}.yaml"), edit)


def containers(path: Path) -> dict[str, tuple[str, ...]]:
    """Each node's container of the service: (id, started at, config label, version label)."""
    labels = '{{index .Config.Labels "io.nodeops.config"}} {{index .Config.Labels "io.nodeops.version"}}'
    res = fab("exec", "--inventory", str(path), "--json", "--nodes", ",".join(NODES), "--command",
              f"docker inspect --format '{{{{.Id}}}} {{{{.State.StartedAt}}}} {labels}' nodeops-{SERVICE}")  # fmt: skip
    return {e["node"]: tuple(e["stdout"].split()) for e in events(res) if e["event"] == "host"}


def serving(path: Path) -> dict[str, str]:
    """Each node's role as `fab status` shows it."""
    res = fab("status", "--inventory", str(path), "--service", SERVICE, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    entry = status_entries(res)[SERVICE]
    return {n["node"]: n["role"] for n in entry["nodes"]} | {"state": entry["state"]}


DOWN_RUN = 5  # samples (0.5 s): a replaced node is down for seconds; a burst of failed probes through the bastion
# (a channel reset under load, seen twice in a row at load 4.7 and in a quiet run) is not a node down


def fewest_serving(samples: list[tuple[bool, ...]]) -> int:
    """The fewest nodes seen serving at once over ``samples`` (each: whether each node answered, 100 ms apart), a
    node counted down only within a run of at least DOWN_RUN missed samples in a row."""
    down = [[False] * len(samples[0]) for _ in samples]
    for node in range(len(samples[0])):
        start = None
        for i, row in enumerate([*samples, (True,) * len(samples[0])]):  # a last answer closes a run at the end
            if not row[node] and start is None:
                start = i
            elif row[node] and start is not None:
                if i - start >= DOWN_RUN:
                    for j in range(start, i):
                        down[j][node] = True
                start = None
    return min(len(row) - sum(row) for row in down)


@pytest.mark.parametrize(
    ("samples", "fewest"),
    [
        ([(True, True)] * 3 + [(False, True)] * DOWN_RUN + [(True, False)] * DOWN_RUN, 1),  # one at a time
        ([(True, True)] * 3 + [(False, False)] * (DOWN_RUN - 1) + [(True, True)], 2),  # a burst of failed probes
        ([(True, True)] * 3 + [(False, False)] * DOWN_RUN, 0),  # both down, to the end
    ],
    ids=["rolling", "probe-burst", "both-down"],
)
def test_the_probe_counts_a_node_down_only_for_a_run_of_misses(samples, fewest):
    assert fewest_serving(samples) == fewest


def test_every_node_serves_and_an_upgrade_rolls_one_at_a_time_with_no_failed_probe(grp, figures):
    _lab, path = grp
    first = fab("deploy", "--inventory", str(path), "--service", SERVICE, "--json", timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    planned = next(e["steps"] for e in events(first) if e.get("message", "").startswith("plan:"))
    assert planned == ["replace cl1-a (not serving)", "await-serving cl1-a",
                       "replace cl1-b (rolling, cl1-a serves)", "await-serving cl1-b",
                       "replace cl2-a (rolling, cl1-a, cl1-b serve)", "await-serving cl2-a"], planned  # fmt: skip
    assert serving(path) == {**dict.fromkeys(NODES, "serving"), "state": "healthy"}
    checked = fab("check", "--inventory", str(path), "--service", SERVICE, "--json")
    found = {e["check"]: e for e in events(checked) if e.get("event") == "check" and not e["node"]}
    assert found["serving"]["ok"], found["serving"]
    assert not {"active", "lease", "standby"} & set(found), found
    before = containers(path)
    assert {c[3] for c in before.values()} == {"2.10.0"}, before

    upgrade = variant(path, "upgrade", lambda d: d["services"][SERVICE].update(
        image=d["services"][SERVICE]["image"].replace(":2.10.0", ":2.11.0")))  # fmt: skip
    with PairProbe(upgrade, SERVICE) as probe:
        rolled = fab("deploy", "--inventory", str(upgrade), "--service", SERVICE, "--json", timeout=600)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    failed = [round(t - probe.samples[0][0], 2) for t, _, lb in probe.samples if lb is None]
    assert failed == [], f"the load balancer failed {len(failed)} probes at {failed[:10]}\n{probe.explain()}"
    fewest = fewest_serving([nodes for _, nodes, _ in probe.samples])
    assert fewest >= len(NODES) - 1, f"more than one node down at a time ({fewest} of {len(NODES)} served)"
    said = [e["message"].split()[0] + " " + e["node"] for e in events(rolled)
            if e.get("node") and e.get("message", "").split()[0] in ("replace", "await-serving")]  # fmt: skip
    assert said == [f"{step} {n}" for n in NODES for step in ("replace", "await-serving")], said
    after = containers(upgrade)
    assert {c[3] for c in after.values()} == {"2.11.0"}, after
    assert serving(upgrade) == {**dict.fromkeys(NODES, "serving"), "state": "healthy"}
    figures(f"activation all, upgrade 2.10.0 -> 2.11.0 of {len(NODES)} nodes: {len(failed)} failed load balancer "
            f"probes of {len(probe.samples)}, at least {fewest} of {len(NODES)} serving at every sample")  # fmt: skip


def test_a_failed_replace_is_undone_on_its_node_and_the_others_keep_serving(grp):
    """A change whose new container exits at boot (a lease refresh over half the lease: Chainlink refuses the config
    whether or not it takes the lease): the first node's replace fails, it gets its previous container back on its
    own inputs and serves again; the run stops there (exit 1), the two other nodes untouched, every node serving."""
    _lab, path = grp
    current = path.with_name("upgrade.yaml")  # what the test before left running
    before = containers(current)
    assert set(before) == set(NODES) and all(before.values()), before
    broken = variant(
        current, "broken", lambda d: d["services"][SERVICE]["variables"].update(LEASE_REFRESH_INTERVAL="9s")
    )
    res = fab("deploy", "--inventory", str(broken), "--service", SERVICE, "--json", timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "cl1-a: not serving /health" in out and "serving: cl1-a, cl1-b, cl2-a" in out, out
    after = containers(current)
    assert after["cl1-b"] == before["cl1-b"] and after["cl2-a"] == before["cl2-a"]  # never touched
    assert after["cl1-a"][2:] == before["cl1-a"][2:], (before, after)  # its previous inputs: same config, version
    wait_for(lambda: serving(current) == {**dict.fromkeys(NODES, "serving"), "state": "healthy"}, "every node", 30)


def test_a_node_that_cannot_be_reached_is_refused_as_unsafe_before_anything(grp):
    """A node of the service cut off (its link down): the deploy is exit 4, not 1 (under activation all a node that
    cannot be seen might be the last one serving), in one line naming it and what to do; no node is touched."""
    _lab, path = grp
    before = containers(path)
    change = variant(path, "cut", lambda d: (d["services"][SERVICE]["variables"].update(LOG_LEVEL="debug"),
                                                d["ssh"].update(connect_timeout=2, connect_retries=0)))  # fmt: skip
    netns = f"nodeops-{NAME}-cl2-a"
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        res = fab("deploy", "--inventory", str(change), "--service", SERVICE, timeout=300)
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    out = res.stdout + res.stderr
    assert res.returncode == 4, out
    line = next(ln for ln in res.stderr.splitlines() if "cannot be reached" in ln)
    assert f"{SERVICE}: cl2-a cannot be reached (cl2-a (" in line, line
    assert "under activation all a node that cannot be seen might be the last one serving" in line, line
    assert "nothing changed; make it reachable again" in line and "Traceback" not in out, out
    assert containers(path) == before  # nothing changed on any node
