"""The deploy planner: (service, node states, desired) -> steps. A table."""

from __future__ import annotations

import json

import pytest

from nodeops.errors import Unsafe
from nodeops.facts.container import Container, connected_to, parse_inspect, served_port, socket_table, with_tag
from nodeops.facts.health import failing_checks
from nodeops.facts.view import NodeView, unhealthy_note
from nodeops.inventory import Node, Service
from nodeops.lease import Lease
from nodeops.plan import Desired, LeaseFacts, plan_service, standby_evidence, the_active, unpulled_image_id
from nodeops.role_hooks import DEFAULT_HOOKS
from nodeops.roles import load_role
from tests.unit.test_role_hooks import checks as health_body  # a body as Chainlink's /health writes it

A = Node("a", "10.0.0.1", 22, "active", (), "svc")
B = Node("b", "10.0.0.2", 22, "standby", (), "svc")
PAIR = Service("svc", "chainlink", "img:2", "docker", {}, {}, (A, B))
WANT = Desired("img:2", "sha256:new", "h2")


def c(current: bool, running: bool = True) -> Container:
    image, config = ("sha256:new", "h2") if current else ("sha256:old", "h1")
    return Container("nodeops-svc", running, "running" if running else "exited", image, {"io.nodeops.config": config})


def states(a=None, b=None, serving=()) -> dict[str, NodeView]:
    return {"a": NodeView(A, a, "a" in serving), "b": NodeView(B, b, "b" in serving)}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (states(), ["replace a", "await-serving a", "replace b", "await-waiting b"]),
        (states(c(False, False), c(False, False)), ["replace a", "await-serving a", "replace b", "await-waiting b"]),
        (states(c(True), c(True), serving="a"), []),
        (states(c(True), c(True), serving="b"), []),
        (states(c(False), c(False), serving="a"),
         ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        (states(c(False), c(False), serving="b"),
         ["replace a", "await-waiting a", "handover b->a", "replace b", "await-waiting b"]),
        (states(c(False), c(True), serving="a"), ["handover a->b", "replace a", "await-waiting a"]),
        (states(c(True), c(False), serving="a"), ["replace b", "await-waiting b"]),
        (states(c(True), None, serving="a"), ["replace b", "await-waiting b"]),
        (states(c(True), c(True, running=False), serving="a"), ["replace b", "await-waiting b"]),
    ],
    ids=["fresh", "all-exited", "current", "current-swapped", "upgrade", "upgrade-swapped", "half-done",
         "standby-stale", "standby-missing", "standby-exited"],
)  # fmt: skip
def test_plan(facts, expected):
    plan = plan_service(PAIR, facts, WANT)
    got = [f"handover {s.node}->{s.to}" if s.action == "handover" else f"{s.action} {s.node}" for s in plan.steps]
    assert got == expected
    assert plan.changes == bool(expected)


@pytest.mark.parametrize(
    ("facts", "fragment"),
    [
        (states(c(True), c(True), serving="ab"), "two nodes serve at once (a, b)"),
        (states(c(True), c(True)), "containers run on a, b but no node serves"),
    ],
)
def test_unclear_pairs_are_refused_as_unsafe(facts, fragment):
    with pytest.raises(Unsafe) as err:
        plan_service(PAIR, facts, WANT)
    assert fragment in str(err.value) and err.value.exit_code == 4


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (states(c(True), c(True), serving="a"),
         ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        (states(c(True), c(True), serving="b"),
         ["replace a", "await-waiting a", "handover b->a", "replace b", "await-waiting b"]),
        (states(c(True), None, serving="a"),
         ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        (states(), ["replace a", "await-serving a", "replace b", "await-waiting b"]),  # nothing runs: as unforced
    ],
    ids=["current", "current-swapped", "standby-missing", "fresh"],
)  # fmt: skip
def test_forced_plan_replaces_up_to_date_nodes_too(facts, expected):
    plan = plan_service(PAIR, facts, WANT, force=True)
    got = [f"handover {s.node}->{s.to}" if s.action == "handover" else f"{s.action} {s.node}" for s in plan.steps]
    assert got == expected


def test_forced_plan_still_refuses_unclear_pairs():
    with pytest.raises(Unsafe, match="two nodes serve at once"):
        plan_service(PAIR, states(c(True), c(True), serving="ab"), WANT, force=True)


def test_single_node_service():
    single = Service("one", "chainlink", "img:2", "docker", {}, {}, (A,))
    facts = {"a": NodeView(A, c(False), True)}
    assert [s.action for s in plan_service(single, facts, WANT).steps] == ["replace", "await-serving"]
    assert not plan_service(single, {"a": NodeView(A, c(True), True)}, WANT).steps
    forced = plan_service(single, {"a": NodeView(A, c(True), True)}, WANT, force=True)
    assert [s.action for s in forced.steps] == ["replace", "await-serving"]


def test_parse_inspect():
    doc = [{"Name": "/nodeops-svc", "Image": "sha256:abc",
            "State": {"Running": True, "Restarting": False, "Status": "running", "ExitCode": 0},
            "Config": {"Labels": {"io.nodeops.config": "h"}, "Env": ["PATH=/bin"], "Entrypoint": ["chainlink"],
                       "Cmd": ["node", "start"]}}]  # fmt: skip
    got = parse_inspect(json.dumps(doc))
    assert (got.name, got.running, got.image_id, got.label("config")) == ("nodeops-svc", True, "sha256:abc", "h")
    assert (got.env, got.args) == (("PATH=/bin",), ("chainlink", "node", "start"))
    doc[0]["State"]["Restarting"] = True
    assert not parse_inspect(json.dumps(doc)).running  # a restart loop is not "running"
    assert parse_inspect("[]") is None


# -- the image a container runs is what nodeops recorded, not the engine's word (podman drops a pinned tag) -------
D = "sha256:" + "d" * 64
PINNED = f"reg:5000/cl:2.10.0@{D}"


@pytest.mark.parametrize(
    ("config_image", "labels", "reference", "version"),
    [
        # docker keeps the reference as given
        (PINNED, {"image": PINNED, "version": "2.10.0"}, PINNED, "2.10.0"),
        # podman (behind the docker CLI too) reports a reference pinned by digest without its tag: the label wins
        (f"reg:5000/cl@{D}", {"image": PINNED, "version": "2.10.0"}, PINNED, "2.10.0"),
        # started by an older nodeops (no image label) on podman: the tag comes back from the version label
        (f"reg:5000/cl@{D}", {"version": "2.10.0"}, PINNED, "2.10.0"),
        # pinned by digest alone: there is no tag to put back
        (f"reg:5000/cl@{D}", {"image": f"reg:5000/cl@{D}", "version": "latest"}, f"reg:5000/cl@{D}", "latest"),
        (f"reg:5000/cl@{D}", {"version": "latest"}, f"reg:5000/cl@{D}", "latest"),
        # by tag: both engines keep it
        ("reg:5000/cl:2.11.0", {"image": "reg:5000/cl:2.11.0", "version": "2.11.0"}, "reg:5000/cl:2.11.0", "2.11.0"),
        # started by hand: the engine's reference and its tag
        ("reg:5000/cl:2.11.0", {}, "reg:5000/cl:2.11.0", "2.11.0"),
        ("", {}, "", None),
    ],
    ids=["docker", "podman", "podman-older-nodeops", "digest-only", "digest-only-older", "tag", "by-hand", "unknown"],
)  # fmt: skip
def test_the_reference_and_version_are_the_ones_nodeops_started_it_with(config_image, labels, reference, version):
    recorded = {f"io.nodeops.{k}": v for k, v in labels.items()}
    doc = [{"Name": "/nodeops-svc", "Image": "sha256:abc", "State": {"Running": True, "Status": "running"},
            "Config": {"Image": config_image, "Labels": recorded}}]  # fmt: skip
    got = parse_inspect(json.dumps(doc))
    assert (got.image, got.reference, got.version) == (config_image, reference, version)


@pytest.mark.parametrize(
    ("image", "tag", "expected"),
    [
        (f"reg:5000/cl@{D}", "2.10.0", PINNED),
        (f"cl@{D}", "2.10.0", f"cl:2.10.0@{D}"),
        (PINNED, "2.11.0", PINNED),  # a tag already there is left alone
        (f"reg:5000/cl@{D}", "latest", f"reg:5000/cl@{D}"),  # image_tag's word for "no tag"
        (f"reg:5000/cl@{D}", None, f"reg:5000/cl@{D}"),
        ("reg:5000/cl", "2.10.0", "reg:5000/cl"),  # no digest: the engine kept what it was given
        ("", "2.10.0", ""),
    ],
)
def test_with_tag(image, tag, expected):
    assert with_tag(image, tag) == expected


# -- the port a running container serves is probed, not the inventory's (a port change stays a rolling change) ---
def labelled(**labels: str) -> Container:
    return Container("nodeops-svc", True, "running", "sha256:x", {f"io.nodeops.{k}": v for k, v in labels.items()})


@pytest.mark.parametrize(
    ("container", "configured", "probed"),
    [
        (labelled(port="6688"), 6700, 6688),  # the inventory now says 6700; the container still serves 6688
        (labelled(port="6700"), 6700, 6700),
        (labelled(config="h1"), 6700, 6700),  # started before the label existed: the inventory's
        (None, 6700, 6700),  # no container: what a new one would serve
        (labelled(port="0"), 6700, 6700),  # not a port number: the inventory's
        (labelled(port="70000"), 6700, 6700),
        (labelled(port="http"), 6700, 6700),
        (labelled(port=""), 6700, 6700),
    ],
)  # fmt: skip
def test_the_probed_port_is_the_one_the_container_serves(container, configured, probed):
    assert served_port(container, configured) == probed


# -- an active that answers unhealthy (503) is still the active: it holds the lease ---------------------------
RPC = "EVM.1.HeadTracker.HeadListener"
CHAINLINK_HOOKS = load_role("chainlink").hooks


@pytest.mark.parametrize(
    ("reply", "failing"),
    [
        (None, ()),  # nothing answers: a standby (or a node that is down)
        ((200, health_body(Database="passing")), ()),
        ((503, health_body(**{"Database": "passing", RPC: "failing", "LeaseLock": "failing"})), (RPC, "LeaseLock")),
        ((503, b""), ("HTTP 503",)),  # answers, names no check: still the active, unhealthy
        ((503, b'{"data": [{"attributes": {}}]}'), ("HTTP 503",)),
        ((503, health_body(Database="passing")), ("HTTP 503",)),
        ((500, b"<html>"), ("HTTP 500",)),
    ],
    ids=["nothing", "healthy", "failing-checks", "no-body", "odd-body", "none-failing", "other-status"],
)
def test_failing_checks(reply, failing):
    """With the Chainlink role's hook (which reads the names: tests/unit/test_role_hooks.py), and with the
    engine's default (no body names a check): an answer that is not 200 is never ()."""
    assert failing_checks(reply, CHAINLINK_HOOKS.failing_checks) == failing
    default = () if reply is None or reply[0] == 200 else (f"HTTP {reply[0]}",)
    assert failing_checks(reply, DEFAULT_HOOKS.failing_checks) == default


def test_failing_checks_are_sorted_once_each_whatever_order_the_hook_names_them():
    assert failing_checks((503, b""), lambda _: ["b", "a", "b", 3]) == ("3", "a", "b")


def sick(node: Node, container: Container | None) -> NodeView:
    return NodeView(node, container, False, (RPC,))


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"a": sick(A, c(False)), "b": NodeView(B, c(False), False)},
         ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        ({"a": NodeView(A, c(False), False), "b": sick(B, c(False))},
         ["replace a", "await-waiting a", "handover b->a", "replace b", "await-waiting b"]),
        ({"a": sick(A, c(True)), "b": NodeView(B, c(False), False)}, ["replace b", "await-waiting b"]),
        ({"a": sick(A, c(True)), "b": None}, ["replace b", "await-waiting b"]),
    ],
    ids=["unhealthy-active-a", "unhealthy-active-b", "standby-stale", "standby-missing"],
)  # fmt: skip
def test_an_unhealthy_active_is_rolled_like_a_healthy_one(facts, expected):
    if facts["b"] is None:
        facts["b"] = NodeView(B, None, False)
    plan = plan_service(PAIR, facts, WANT)
    got = [f"handover {s.node}->{s.to}" if s.action == "handover" else f"{s.action} {s.node}" for s in plan.steps]
    assert got == expected
    active = "b" if "handover b->a" in got else "a"
    assert plan.reason.endswith(f"the active {active} answers unhealthy (failing: {RPC})")


def test_an_up_to_date_pair_with_an_unhealthy_active_says_so():
    plan = plan_service(PAIR, {"a": sick(A, c(True)), "b": NodeView(B, c(True), False)}, WANT)
    assert not plan.steps and plan.reason == f"up to date; the active a answers unhealthy (failing: {RPC})"


def test_two_nodes_answering_are_refused_even_if_one_is_unhealthy():
    with pytest.raises(Unsafe, match=r"two nodes serve at once \(a, b\)"):
        plan_service(PAIR, {"a": NodeView(A, c(True), True), "b": sick(B, c(True))}, WANT)


def test_a_single_unhealthy_node_is_replaced():
    single = Service("one", "chainlink", "img:2", "docker", {}, {}, (A,))
    assert [s.action for s in plan_service(single, {"a": sick(A, c(True))}, WANT).steps] == ["replace", "await-serving"]


@pytest.mark.parametrize(
    ("a", "b", "active", "note"),
    [
        (NodeView(A, c(True), True), NodeView(B, c(True), False), "a", None),
        (NodeView(A, c(True), False), NodeView(B, c(True), False, ("HTTP 503",)), "b", "b: active, unhealthy "
         "(failing: HTTP 503)"),
        (NodeView(A, c(True), False, ("Database", "LeaseLock")), NodeView(B, None, False), "a",
         "a: active, unhealthy (failing: Database, LeaseLock)"),
        (NodeView(A, c(True), False), NodeView(B, c(True), False), "0 nodes hold the lease (answer their health "
         "path: none); roll it (see fab status)", None),
        (NodeView(A, c(True), True), NodeView(B, c(True), False, ("HTTP 503",)), "2 nodes hold the lease (answer "
         "their health path: a, b); roll it (see fab status)", None),
    ],
    ids=["healthy-a", "unhealthy-b", "unhealthy-a-alone", "nobody", "healthy-and-unhealthy"],
)  # fmt: skip
def test_the_active_is_the_lease_holder_healthy_or_not(a, b, active, note):
    """plan.the_active: the one shared answer to "who is active" (rollback, rotate-secrets, deploy's plan)."""
    if len(active) > 1:
        with pytest.raises(Unsafe) as err:
            the_active([a, b], "svc", "roll it")
        assert str(err.value) == f"svc: {active}"
        return
    found = the_active([a, b], "svc", "roll it")
    assert found.node.name == active and unhealthy_note(found) == note


@pytest.mark.parametrize(
    ("held", "digest", "expected"),
    [
        ([("sha256:id1", "sha256:d1"), ("sha256:id1", "sha256:d1")], "sha256:d1", "sha256:id1"),
        ([("sha256:id1", "sha256:d1"), ("sha256:id1", "sha256:d1")], None, "sha256:id1"),
        ([("sha256:id1", "sha256:d1"), ("sha256:id1", "sha256:d1")], "sha256:d2", "unpulled:sha256:d2"),
        ([None, None], "sha256:d2", "unpulled:sha256:d2"),
        ([None, None], None, "unpulled:img:3"),
        ([("sha256:id1", "sha256:d1"), None], "sha256:d1", "unpulled:sha256:d1"),
        ([("sha256:id1", "sha256:d1"), ("sha256:id2", "sha256:d2")], None, "unpulled:img:3"),
    ],
    ids=["held-current", "held-registry-unknown", "tag-moved", "not-held", "nothing-known", "one-node-only",
         "nodes-differ"],
)  # fmt: skip
def test_a_dry_run_knows_the_image_without_pulling(held, digest, expected):
    assert unpulled_image_id("img:3", held, digest) == expected
    want = Desired("img:3", expected, "h2")
    runs = Container("nodeops-svc", True, "running", "sha256:id1", {"io.nodeops.config": "h2"})
    assert want.matches(runs) is (expected == "sha256:id1")


# -- a standby is recognised by the lease, not by a log line its level may hide -----------------------------------
HELD_BY_X1, HELD_BY_Y2 = Lease("x1-lease-id", 8.0), Lease("y2-lease-id", 8.0)


@pytest.mark.parametrize(
    ("other_answers", "other_id", "lease", "logged", "waiting", "why"),
    [
        # LOG_LEVEL warn: no log line; the lease row, held by the node that answers, says it all
        (True, "x1-lease-id", HELD_BY_X1, False, True, "the lease is held by x1-lease, expires in 8.0s (database "
                                                       "time): a's"),
        (True, None, HELD_BY_X1, False, True, "and a answers its health path"),  # a reply naming no id (Chainlink)
        (True, "x1-lease-id", HELD_BY_X1, True, True, "a's; its log says it waits for the lease"),  # extra evidence
        (True, "x1-lease-id", HELD_BY_Y2, True, False, "not by a (x1-lease)"),  # the log alone is not enough
        (False, None, HELD_BY_X1, True, False, "but no other node answers"),
        (True, None, Lease("x1-lease-id", -3.0), False, False, "expired 3.0s ago (database time): nobody holds it"),
        (True, None, Lease(None, 0.0), True, False, "the lease is never taken"),
        # the lease row unreadable from here (the database refuses this run's login, say): who answers still tells
        (True, None, "cannot read the lease", False, True, "a answers its health path, so it holds the lease (lease "
                                                           "row not read: cannot read the lease)"),
        (False, None, "cannot read the lease", True, True, "its log says it waits for the lease (lease row not read"),
        (False, None, "cannot read the lease", False, False, "could not be read (cannot read the lease)"),
        (False, None, None, False, True, "running, not serving (the role keeps no lease)"),
    ],
    ids=["warn-lease-held-by-other", "no-app-id", "logged-too", "held-by-a-third", "other-silent", "expired",
         "never-taken", "unreadable-other-answers", "unreadable-logged", "unreadable-nothing", "no-lease-role"],
)  # fmt: skip
def test_standby_evidence(other_answers, other_id, lease, logged, waiting, why):
    got = standby_evidence("a", other_answers, other_id, lease, logged)
    assert got[0] is waiting and why in got[1], got


@pytest.mark.parametrize(
    ("lease", "logged", "connected", "waiting", "why"),
    [
        # a container that runs, silent, while a holds the lease, but whose process has not connected to the database:
        # still starting (slow under load), it may not have read its files; shredding them now fails its takeover
        (HELD_BY_X1, False, False, False, "holds no connection to the lease database yet"),
        (HELD_BY_X1, True, False, False, "holds no connection to the lease database yet"),  # an old log line
        (HELD_BY_X1, False, True, True, "a's"),
        (HELD_BY_X1, False, None, True, "a's"),  # its socket tables unreadable: the lease decides, as before
        ("cannot read the lease", False, False, False, "holds no connection"),
        (None, False, False, True, "the role keeps no lease"),  # no lease database to connect to
    ],
    ids=["not-yet", "not-yet-logged", "connected", "unknown", "unreadable-not-yet", "no-lease-role"],
)  # fmt: skip
def test_a_standby_not_yet_connected_to_the_lease_database_is_not_waiting(lease, logged, connected, waiting, why):
    got = standby_evidence("a", True, "x1-lease-id", lease, logged, connected)
    assert got[0] is waiting and why in got[1], got


TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


@pytest.mark.parametrize(
    ("table", "port", "expected"),
    [
        (TCP_HEADER + "   0: 0A000002:A3F0 0A000001:1538 01 00000000:00000000 00:00000000 00000000 14933 0 1 1\n", 5432,
         True),  # established to 10.0.0.1:5432
        (TCP_HEADER + "   0: 0A000002:A3F0 0A000001:1538 01 00000000:00000000 00:00000000 00000000 14933 0 1 1\n", 6432,
         False),  # another port
        (TCP_HEADER + "   0: 0A000002:A3F0 0A000001:1538 06 00000000:00000000 00:00000000 00000000 14933 0 1 1\n", 5432,
         False),  # TIME_WAIT: a connection that was closed
        (TCP_HEADER + "   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000 14933 0 1 1\n", 5432,
         False),  # listening on 5432 is no connection to it
        (TCP_HEADER + TCP_HEADER +  # the tcp table (empty), then the tcp6 one
         "   0: 0000000000000000FFFF00000200000A:B0F2 0000000000000000FFFF00000100000A:1538 01 0 0 0 14933 0 1 1\n",
         5432, True),
        (TCP_HEADER, 5432, False),  # the tables, empty
        ("", 5432, None),  # nothing read: the process gone, or /proc not readable
        ("cat: /proc/1/net/tcp: Permission denied\n", 5432, None),
    ],
    ids=["established", "other-port", "time-wait", "listening", "tcp6", "empty", "unread", "refused"],
)  # fmt: skip
def test_connected_to_reads_the_socket_tables(table, port, expected):
    assert connected_to(table, port) is expected


def test_socket_table_reads_the_process_namespace_tables():
    assert socket_table(4321) == "cat /proc/4321/net/tcp /proc/4321/net/tcp6 2>/dev/null"
    with pytest.raises(ValueError):
        socket_table("1; rm -rf /")  # type: ignore[arg-type]  # a pid is a number, never shell text


HOLDER = "a1" * 16  # a's lease client id, as its health reply names it


@pytest.mark.parametrize(
    ("facts", "lease", "active_id", "refused"),
    [
        (states(c(True), None, serving="a"), Lease("051fbec8" * 4, -30.0), HOLDER, "held by 051fbec8, expired"),
        (states(c(True), c(True, running=False), serving="a"), Lease(None, 0.0), None, "never taken"),
        (states(c(False), c(False), serving="a"), Lease("051fbec8" * 4, 9.0), HOLDER, "not a's (a1a1a1a1)"),
        (states(c(True), None, serving="a"), Lease(HOLDER, 9.0), HOLDER, None),  # a holds it: the standby may start
        (states(c(True), None, serving="a"), Lease("051fbec8" * 4, 9.0), None, None),  # no id named: not comparable
        (states(c(True), None, serving="a"), "cannot connect", HOLDER, None),  # unread: the standby's await decides
        (states(c(True), c(True), serving="a"), Lease(None, 0.0), HOLDER, None),  # nothing to start: no refusal
    ],
    ids=["expired-other", "never-taken", "held-by-another", "a-holds", "no-id", "unread", "up-to-date"],
)  # fmt: skip
def test_a_standby_is_not_started_beside_a_node_that_serves_without_the_lease(facts, lease, active_id, refused):
    """review15 F5: a service moved from activation all to lease, its other node stopped: the node left serving
    ran without the lease (none of the pair held it), and the plan started a standby beside it, which took the
    lease and served as well. Under lease a plan that starts a node beside one that serves first sees that the
    serving node holds the lease; one that does not is refused (exit 4) before anything changes."""
    held = LeaseFacts(lease, active_id)
    if refused is None:
        plan_service(PAIR, facts, WANT, lease=held)
        return
    with pytest.raises(Unsafe) as err:
        plan_service(PAIR, facts, WANT, lease=held)
    said = str(err.value)
    assert err.value.exit_code == 4 and refused in said, said
    assert said.startswith("svc: a serves but does not hold the lease") and "docs/roles.md#activation" in said, said
